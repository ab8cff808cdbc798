#ifndef CURBSIDE_COPENSSL_SHIMS_H
#define CURBSIDE_COPENSSL_SHIMS_H

// Functions for the OpenSSL 3 macros Swift cannot import. Each is a one-line forward; nothing else lives here.

#include <openssl/bio.h>
#include <openssl/ssl.h>

int curbside_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version);
int curbside_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version);
int curbside_SSL_set_tlsext_host_name(SSL *ssl, const char *name);
long curbside_BIO_get_mem_data(BIO *bio, char **data);
int curbside_TLS1_3_VERSION(void);

#endif

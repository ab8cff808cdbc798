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
long curbside_BIO_set_mem_eof_return(BIO *bio, long value);
uint64_t curbside_SSL_OP_NO_TICKET(void);
int curbside_SSL_set_app_data(SSL *ssl, void *data);
void *curbside_SSL_get_app_data(const SSL *ssl);
int curbside_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list);
long curbside_SSL_CTX_set_mode(SSL_CTX *ctx, long mode);
long curbside_SSL_get_mode(SSL *ssl);

#endif

#include "COpenSSLShims.h"

int curbside_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

int curbside_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

int curbside_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

long curbside_BIO_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

int curbside_TLS1_3_VERSION(void) {
    return TLS1_3_VERSION;
}

long curbside_BIO_set_mem_eof_return(BIO *bio, long value) {
    return BIO_set_mem_eof_return(bio, value);
}

uint64_t curbside_SSL_OP_NO_TICKET(void) {
    return SSL_OP_NO_TICKET;
}

int curbside_SSL_set_app_data(SSL *ssl, void *data) {
    return SSL_set_app_data(ssl, data);
}

void *curbside_SSL_get_app_data(const SSL *ssl) {
    return SSL_get_app_data(ssl);
}

int curbside_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list(ctx, list);
}

long curbside_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

long curbside_SSL_get_mode(SSL *ssl) {
    return SSL_get_mode(ssl);
}

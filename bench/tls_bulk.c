/* The baseline for tls_bulk_ratio: a plain OpenSSL program moving the same bytes over loopback TLS 1.3 with the
 * same defaults (cipher suites, Ed25519 certificate) as Curbside's TLS module. Usage: tls_bulk CERT KEY MiB */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: tls_bulk CERT KEY MiB\n"); return 64; }
    long total = atol(argv[3]) << 20;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0 };
    socklen_t length = sizeof address;
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1)) { perror("bind"); return 1; }
    getsockname(listener, (struct sockaddr *)&address, &length);
    int done[2];
    if (pipe(done)) return 1;
    pid_t child = fork();
    if (child == 0) {
        SSL_CTX *context = SSL_CTX_new(TLS_server_method());
        SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION);
        if (SSL_CTX_use_certificate_file(context, argv[1], SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_use_PrivateKey_file(context, argv[2], SSL_FILETYPE_PEM) != 1) { ERR_print_errors_fp(stderr); _exit(1); }
        int fd = accept(listener, NULL, NULL);
        SSL *ssl = SSL_new(context);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) { ERR_print_errors_fp(stderr); _exit(1); }
        static char buffer[64 * 1024];
        long received = 0;
        while (received < total) {
            int n = SSL_read(ssl, buffer, sizeof buffer);
            if (n <= 0) break;
            received += n;
        }
        char byte = 1;
        if (write(done[1], &byte, 1) != 1) _exit(1);
        _exit(received == total ? 0 : 1);
    }
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&address, sizeof address)) { perror("connect"); return 1; }
    SSL *ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) { ERR_print_errors_fp(stderr); return 1; }
    static char chunk[64 * 1024];
    memset(chunk, 0x5a, sizeof chunk);
    double start = now();
    for (long sent = 0; sent < total; sent += sizeof chunk) {
        if (SSL_write(ssl, chunk, sizeof chunk) <= 0) { ERR_print_errors_fp(stderr); return 1; }
    }
    char byte;
    if (read(done[0], &byte, 1) != 1) return 1;
    double elapsed = now() - start;
    int status;
    waitpid(child, &status, 0);
    printf("{\"metric\": \"openssl_bulk_mb_per_s\", \"value\": %.3f, \"unit\": \"MiB/s\", \"cipher\": \"%s\"}\n",
           (double)(total >> 20) / elapsed, SSL_get_cipher(ssl));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

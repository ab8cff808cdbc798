/* The RabbitMQ peer of relay_durable: one publisher over TLS 1.3 publishes persistent 1 KiB messages to a durable
 * queue on a channel in confirm mode, keeping WINDOW unconfirmed (bench/run.sh: 320, as Curbside's 16 senders with
 * 20 sends each in flight), and counts only those the broker confirmed (RabbitMQ confirms a persistent message routed to a
 * durable queue once it is written to disk). No consumer is attached, as no recipient is connected in
 * relay_durable: every message stays queued.
 * Usage: amqp_bench PORT CAFILE SECONDS [WINDOW] */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void check(amqp_rpc_reply_t reply, const char *what) {
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) { fprintf(stderr, "amqp_bench: %s failed (%d)\n", what, reply.reply_type); exit(1); }
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: amqp_bench PORT CAFILE SECONDS [WINDOW]\n"); return 64; }
    int port = atoi(argv[1]);
    double seconds = atof(argv[3]);
    long window = argc > 4 ? atol(argv[4]) : 16;
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_ssl_socket_new(conn);
    if (!socket || amqp_ssl_socket_set_cacert(socket, argv[2]) != AMQP_STATUS_OK) { fprintf(stderr, "amqp_bench: TLS setup failed\n"); return 1; }
    amqp_ssl_socket_set_verify_peer(socket, 0); /* the throw-away certificate, as mqtt_bench's tls_insecure */
    amqp_ssl_socket_set_verify_hostname(socket, 0);
    SSL_CTX_set_min_proto_version((SSL_CTX *)amqp_ssl_socket_get_context(socket), TLS1_3_VERSION);
    if (amqp_socket_open(socket, "127.0.0.1", port) != AMQP_STATUS_OK) { fprintf(stderr, "amqp_bench: connect failed\n"); return 1; }
    check(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(conn, 1);
    check(amqp_get_rpc_reply(conn), "channel.open");
    amqp_confirm_select(conn, 1);
    check(amqp_get_rpc_reply(conn), "confirm.select");
    amqp_bytes_t queue = amqp_cstring_bytes("consults");
    amqp_queue_declare(conn, 1, queue, 0, 1 /* durable */, 0, 0, amqp_empty_table);
    check(amqp_get_rpc_reply(conn), "queue.declare");

    amqp_basic_properties_t properties;
    memset(&properties, 0, sizeof properties);
    properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    properties.delivery_mode = 2; /* persistent */
    char payload[1024];
    memset(payload, 'x', sizeof payload);
    amqp_bytes_t body = {sizeof payload, payload};

    uint64_t published = 0, confirmed = 0, nacked = 0;
    double start = now();
    int publishing = 1;
    while (publishing || confirmed + nacked < published) {
        if (publishing && now() - start >= seconds) publishing = 0;
        while (publishing && published - confirmed - nacked < (uint64_t)window) {
            memcpy(payload, &published, sizeof published);
            if (amqp_basic_publish(conn, 1, amqp_empty_bytes, queue, 0, 0, &properties, body) != AMQP_STATUS_OK) {
                fprintf(stderr, "amqp_bench: publish failed\n");
                return 1;
            }
            published++;
        }
        if (!publishing && now() - start > seconds + 10) break;
        amqp_frame_t frame;
        struct timeval tick = {1, 0}; /* so that a stalled broker cannot hold the run past its bound */
        int status = amqp_simple_wait_frame_noblock(conn, &frame, &tick);
        if (status == AMQP_STATUS_TIMEOUT) continue;
        if (status != AMQP_STATUS_OK) { fprintf(stderr, "amqp_bench: connection lost\n"); return 1; }
        if (frame.frame_type != AMQP_FRAME_METHOD) continue;
        /* A channel's confirms come in publishing order; `multiple` confirms every tag up to this one. */
        if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *ack = frame.payload.method.decoded;
            if (ack->delivery_tag > confirmed + nacked) confirmed = ack->delivery_tag - nacked;
        } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            amqp_basic_nack_t *nack = frame.payload.method.decoded;
            uint64_t tag = nack->delivery_tag;
            if (tag > confirmed + nacked) nacked = tag - confirmed;
        }
    }
    double elapsed = now() - start;
    if (nacked) fprintf(stderr, "amqp_bench: %llu messages refused\n", (unsigned long long)nacked);
    printf("{\"metric\": \"rabbitmq_msgs_per_s\", \"value\": %.3f, \"unit\": \"msgs/s\"}\n", confirmed / elapsed);
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return 0;
}

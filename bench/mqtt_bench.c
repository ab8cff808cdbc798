/* The mosquitto peer: durable throughput (one QoS 1 publisher, 1 KiB payloads, as fast as the broker acknowledges,
 * with a QoS 1 subscriber attached) and latency (QoS 1 at a steady rate, publish-to-receive).
 * Usage: mqtt_bench throughput|latency PORT CAFILE SECONDS [RATE] */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static volatile long acked = 0, received = 0;
static double *latencies;
static long latency_capacity;

static void on_publish(struct mosquitto *m, void *user, int mid) { (void)m; (void)user; (void)mid; __sync_fetch_and_add(&acked, 1); }

static void on_message(struct mosquitto *m, void *user, const struct mosquitto_message *message) {
    (void)m; (void)user;
    if (message->payloadlen >= (int)sizeof(double) && latencies) {
        double sent;
        memcpy(&sent, message->payload, sizeof sent);
        long n = __sync_fetch_and_add(&received, 1);
        if (n < latency_capacity) latencies[n] = now() - sent;
    } else {
        __sync_fetch_and_add(&received, 1);
    }
}

static struct mosquitto *client(const char *id, int port, const char *ca) {
    struct mosquitto *m = mosquitto_new(id, true, NULL);
    mosquitto_tls_set(m, ca, NULL, NULL, NULL, NULL);
    mosquitto_tls_insecure_set(m, true); /* the test CA's certificate names 127.0.0.1 only loosely */
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) { fprintf(stderr, "connect failed\n"); exit(1); }
    mosquitto_loop_start(m);
    return m;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: mqtt_bench throughput|latency PORT CAFILE SECONDS [RATE]\n"); return 64; }
    int port = atoi(argv[2]);
    double seconds = atof(argv[4]);
    mosquitto_lib_init();
    struct mosquitto *subscriber = client("bench-sub", port, argv[3]);
    mosquitto_message_callback_set(subscriber, on_message);
    mosquitto_subscribe(subscriber, NULL, "bench/consults", 1);
    usleep(200000);
    struct mosquitto *publisher = client("bench-pub", port, argv[3]);
    mosquitto_publish_callback_set(publisher, on_publish);
    char payload[1024];
    memset(payload, 'x', sizeof payload);
    if (strcmp(argv[1], "throughput") == 0) {
        long sent = 0;
        double start = now();
        while (now() - start < seconds) {
            /* At most 20 unacknowledged, mosquitto's default in-flight window. */
            while (sent - acked >= 20) usleep(50);
            memcpy(payload, &sent, sizeof sent);
            mosquitto_publish(publisher, NULL, "bench/consults", sizeof payload, payload, 1, false);
            sent++;
        }
        while (acked < sent && now() - start < seconds + 10) usleep(1000);
        printf("{\"metric\": \"mosquitto_msgs_per_s\", \"value\": %.3f, \"unit\": \"msgs/s\"}\n", acked / (now() - start));
    } else {
        int rate = argc > 5 ? atoi(argv[5]) : 1000;
        long total = (long)(seconds * rate);
        latency_capacity = total;
        latencies = calloc(total, sizeof(double));
        double start = now();
        for (long n = 0; n < total; n++) {
            double due = start + (double)n / rate;
            while (now() < due) usleep(50);
            double t = now();
            memcpy(payload, &t, sizeof t);
            mosquitto_publish(publisher, NULL, "bench/consults", sizeof payload, payload, 1, false);
        }
        while (received < total && now() - start < seconds + 10) usleep(1000);
        long n = received < total ? received : total;
        qsort(latencies, n, sizeof(double), compare);
        printf("{\"metric\": \"mosquitto_latency_p50_ms\", \"value\": %.3f, \"unit\": \"ms\"}\n", n ? latencies[n / 2] * 1000 : -1);
        printf("{\"metric\": \"mosquitto_latency_p99_ms\", \"value\": %.3f, \"unit\": \"ms\"}\n", n ? latencies[(long)(n * 0.99)] * 1000 : -1);
    }
    mosquitto_disconnect(publisher);
    mosquitto_disconnect(subscriber);
    mosquitto_lib_cleanup();
    return 0;
}

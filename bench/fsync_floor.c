/* The floor any durable relay pays per message: a 1 KiB append and fdatasync to a file in DIR (put it on the relay's
 * disk), at a steady RATE for SECONDS; prints p50 and p99 of each append-and-sync in ms.
 * Usage: fsync_floor DIR RATE SECONDS */
#include <fcntl.h>
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

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: fsync_floor DIR RATE SECONDS\n"); return 64; }
    int rate = atoi(argv[2]);
    long total = (long)(atof(argv[3]) * rate);
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync-floor.bin", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0) { perror("fsync_floor: open"); return 1; }
    char block[1024];
    memset(block, 'x', sizeof block);
    double *took = calloc(total, sizeof(double));
    double start = now();
    for (long n = 0; n < total; n++) {
        double due = start + (double)n / rate;
        while (now() < due) usleep(50);
        double t = now();
        if (write(fd, block, sizeof block) != sizeof block || fdatasync(fd) != 0) { perror("fsync_floor: write"); return 1; }
        took[n] = now() - t;
    }
    close(fd);
    unlink(path);
    qsort(took, total, sizeof(double), compare);
    printf("{\"metric\": \"fsync_floor_p50_ms\", \"value\": %.3f, \"unit\": \"ms\"}\n", took[total / 2] * 1000);
    printf("{\"metric\": \"fsync_floor_p99_ms\", \"value\": %.3f, \"unit\": \"ms\"}\n", took[(long)(total * 0.99)] * 1000);
    return 0;
}

/* A job program for bench/runner_writes.py: writes RATE progress lines a second to fd 3 for
 * SECONDS seconds, on an absolute schedule, each `PROGRESS N WALLNS`: the report's number and
 * the wall-clock time (ns) it was written, so a reader of the status file can tell how late the
 * state became visible. C, so that 100 of them cost the machine little next to the runner. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fd3_reporter RATE SECONDS\n");
        return 64;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    long total = (long)(rate * seconds), period = (long)(1e9 / rate);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long n = 1; n <= total; n++) {
        next.tv_nsec += period;
        while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0) {}
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        if (dprintf(3, "%.2f %ld %lld\n", 100.0 * n / total, n, (long long)wall.tv_sec * 1000000000LL + wall.tv_nsec) < 0) return 1;
    }
    return 0;
}

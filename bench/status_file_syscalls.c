/* The syscalls of one progress write, alone, on one thread: what the filesystem under DIR charges
 * (CPU µs per write, getrusage) for the two ways of replacing jobs/ID.json (docs/BENCHMARKS.md).
 *
 *   cc -O2 -o /tmp/status_file_syscalls bench/status_file_syscalls.c && /tmp/status_file_syscalls /var/tmp
 *
 * fresh:    open(O_CREAT|O_TRUNC) a new temp file, write, close, rename over the status file
 *           (the runner before issue 11, less the fsync): an inode allocated and one freed per write.
 * exchange: cut the job's spare file to its first byte, write, close, renameat2(RENAME_EXCHANGE)
 *           with the status file (the runner now): the same two inodes for ever. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    char root[4096], tmp[4200], jobs[4200], temp[4300], spare[4300], status[4300], buf[600];
    snprintf(root, sizeof root, "%s/status-syscalls.XXXXXX", argc > 1 ? argv[1] : "/var/tmp");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    snprintf(tmp, sizeof tmp, "%s/runner-tmp", root);
    snprintf(jobs, sizeof jobs, "%s/jobs", root);
    mkdir(tmp, 0700);
    mkdir(jobs, 0755);
    snprintf(temp, sizeof temp, "%s/temp", tmp);
    snprintf(spare, sizeof spare, "%s/ID.progress", tmp);
    snprintf(status, sizeof status, "%s/ID.json", jobs);
    memset(buf, 'x', sizeof buf);
    buf[0] = '{';
    const int n = 20000;

    double start = cpu();
    for (int i = 0; i < n; i++) {
        int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, buf, sizeof buf) < 0 || close(fd) < 0 || rename(temp, status) < 0) { perror("fresh"); return 1; }
    }
    printf("fresh file + rename:     %6.1f us CPU per write\n", (cpu() - start) / n * 1e6);

    start = cpu();
    for (int i = 0; i < n; i++) {
        int fd = open(spare, O_WRONLY | O_CREAT, 0644);
        if (fd < 0 || ftruncate(fd, 1) < 0 || write(fd, buf, sizeof buf) < 0 || close(fd) < 0
            || renameat2(AT_FDCWD, spare, AT_FDCWD, status, RENAME_EXCHANGE) < 0) { perror("exchange"); return 1; }
    }
    printf("spare file + exchange:   %6.1f us CPU per write\n", (cpu() - start) / n * 1e6);

    unlink(spare);
    unlink(status);
    rmdir(tmp);
    rmdir(jobs);
    rmdir(root);
    return 0;
}

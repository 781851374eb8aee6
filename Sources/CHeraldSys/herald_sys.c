#define _GNU_SOURCE
#include "herald_sys.h"
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

int herald_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = { .events = events, .data = { .u64 = data } };
    return epoll_ctl(epfd, op, fd, &ev);
}

int herald_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) { datas[i] = evs[i].data.u64; events[i] = evs[i].events; }
    return n;
}

ssize_t herald_getrandom(void *buffer, size_t length) { return getrandom(buffer, length, 0); }
int herald_pipe2_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int herald_accept_cloexec(int listener) { return accept4(listener, NULL, NULL, SOCK_CLOEXEC); }
int herald_flock(int fd, int operation) { return flock(fd, operation); }

int herald_stat(const char *path, int64_t *size, int64_t *mtime_ms, int *is_directory) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (size) *size = st.st_size;
    if (mtime_ms) *mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    if (is_directory) *is_directory = S_ISDIR(st.st_mode);
    return 0;
}

int herald_fstat(int fd, int64_t *size) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    *size = st.st_size;
    return 0;
}

int herald_statfs_type(const char *path, int64_t *type) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    *type = (int64_t)fs.f_type;
    return 0;
}

int herald_is_file_at(int fd, const char *path) {
    struct stat open_file, at_path;
    if (fstat(fd, &open_file) != 0) return -1;
    if (stat(path, &at_path) != 0) return 0;
    return open_file.st_dev == at_path.st_dev && open_file.st_ino == at_path.st_ino && open_file.st_nlink > 0;
}

int herald_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
int herald_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
int herald_nice_this_thread(int nice) { return setpriority(PRIO_PROCESS, (id_t)gettid(), nice); }
int herald_spawn_closefrom(posix_spawn_file_actions_t *actions, int from) { return posix_spawn_file_actions_addclosefrom_np(actions, from); }

long herald_raise_open_files(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    if (limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = {limit.rlim_max, limit.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > 0x7fffffffL ? 0x7fffffffL : (long)limit.rlim_cur;
}

int herald_rename_exchange(const char *a, const char *b) { return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE); }

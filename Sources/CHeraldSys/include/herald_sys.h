#ifndef HERALD_SYS_H
#define HERALD_SYS_H
/* What Swift's Glibc module lacks or makes awkward: epoll, eventfd, getrandom,
   pipe2, flock and stat (their names clash with structs in Swift), memfd_create, prctl. */
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/types.h>
#include <stdint.h>
#include <stddef.h>

static const uint32_t HERALD_EPOLLIN = EPOLLIN;
static const uint32_t HERALD_EPOLLOUT = EPOLLOUT;
static const uint32_t HERALD_EPOLLRDHUP = EPOLLRDHUP;
static const uint32_t HERALD_EPOLLHUP = EPOLLHUP;
static const uint32_t HERALD_EPOLLERR = EPOLLERR;
static const uint32_t HERALD_EPOLLONESHOT = EPOLLONESHOT;

/* epoll_event is packed on x86_64; these keep Swift away from its layout. */
int herald_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int herald_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms);

ssize_t herald_getrandom(void *buffer, size_t length);
int herald_pipe2_cloexec(int fds[2]);
/* accept4(2) with SOCK_CLOEXEC (a _GNU_SOURCE call). */
int herald_accept_cloexec(int listener);
int herald_flock(int fd, int operation);
/* Size and modification time (ms) of a path or descriptor; -1 with errno on failure. */
int herald_stat(const char *path, int64_t *size, int64_t *mtime_ms, int *is_directory);
int herald_fstat(int fd, int64_t *size);
/* The filesystem's magic number (statfs f_type) at path; -1 with errno on failure. */
int herald_statfs_type(const char *path, int64_t *type);
/* 1 when fd is the file now at path (same device and inode, not unlinked), 0 when not, -1 on error. */
int herald_is_file_at(int fd, const char *path);
/* An anonymous close-on-exec file in memory (a job's stdin). */
int herald_memfd_create(const char *name);
/* prctl is variadic, which Swift cannot call. */
int herald_set_child_subreaper(void);
/// Sets the calling thread's nice value (Linux schedules threads apart).
int herald_nice_this_thread(int nice);
/* glibc declares it only with _GNU_SOURCE, which Swift does not define. */
int herald_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);
/* renameat2(2) RENAME_EXCHANGE: swaps two names atomically (glibc declares it only with _GNU_SOURCE). */
int herald_rename_exchange(const char *a, const char *b);
/* Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit then in force, or -1. */
long herald_raise_open_files(void);
#endif

/*
 * relay-floor: the least a FastCGI responder can do to fan one event out to N parked
 * streams behind nginx. Its CPU per event (nginx + itself) is the floor of Herald's relay:
 * what nginx costs to relay FastCGI records to SSE clients, plus one write(2) per stream.
 *
 *   relay-floor --socket PATH --event FILE --go FILE [--count 100] [--interval-ms 100]
 *               [--coalesce C] [--tcp PORT]
 *
 * Raw FastCGI records on one epoll thread, not libfcgi: libfcgi would add a request struct,
 * its stream buffers and a thread per accepting call, and still end in the same write(2) per
 * stream per event; herald-fcgi too writes its parked streams' records itself. The floor
 * keeps only what cannot be avoided: accept, read the request's records up to the empty
 * FCGI_STDIN, answer the SSE headers and the current state, then per event build one
 * FCGI_STDOUT record (padded to 8 bytes, as Herald frames it) and write it to every stream.
 *
 * --event FILE   the SSE event text (`event: status`, `id:`, `data: {job JSON}`, blank line)
 *                with placeholders @SEQ@, @TS@ (RFC 3339 ms, UTC) and @MS@ (epoch ms), so the
 *                bytes match what Herald sends for the same job.
 * --go FILE      written by the driver: "T0" (epoch seconds). Event k (1..count) goes out at
 *                T0 + k * interval; until the file exists, streams get the state seq 0.
 * --coalesce C   experiment: send C events per write, C records in one buffer (every
 *                C × interval), to split the cost per write from the cost per byte.
 * --tcp PORT     experiment: listen on 127.0.0.1:PORT instead of the unix socket.
 * --uring B      experiment: submit the writes of one event through io_uring, B per
 *                io_uring_enter(2) call, instead of one write(2) each.
 *
 * On SIGTERM it prints one JSON line of counters to stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { FCGI_BEGIN_REQUEST = 1, FCGI_PARAMS = 4, FCGI_STDIN = 5, FCGI_STDOUT = 6 };
enum { LISTEN_TOKEN = -1 };

struct conn {
    int fd;
    int parked;           /* index in `parked`, or -1 while the request is still being read */
    unsigned char *in;    /* request bytes not parsed yet */
    size_t in_len;
    unsigned char *out;   /* bytes the socket did not take yet */
    size_t out_len, out_off;
};

static struct conn **conns;      /* by fd */
static int *parked;              /* fds of parked streams, dense */
static int nparked;
static int epfd;
static volatile sig_atomic_t stopping;
static struct { long accepted, parked, closed, events, writes, partial, rejected, enters; double write_loop_s; } stat_;

static void die(const char *what) { perror(what); exit(1); }

/* io_uring without liburing: the rings mapped once; one SQE per stream write. */
static struct {
    int fd;
    unsigned entries, *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned pending;  /* SQEs queued, not yet submitted */
    long inflight;     /* submitted, not yet completed */
} ring;

static void ring_setup(unsigned entries) {
    struct io_uring_params p = {0};
    ring.fd = (int)syscall(SYS_io_uring_setup, entries, &p);
    if (ring.fd < 0) die("io_uring_setup");
    ring.entries = p.sq_entries;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    unsigned char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQ_RING);
    unsigned char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_CQ_RING);
    ring.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                     ring.fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || ring.sqes == MAP_FAILED) die("mmap io_uring");
    ring.sq_head = (unsigned *)(sq + p.sq_off.head);
    ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
    ring.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    ring.sq_array = (unsigned *)(sq + p.sq_off.array);
    ring.cq_head = (unsigned *)(cq + p.cq_off.head);
    ring.cq_tail = (unsigned *)(cq + p.cq_off.tail);
    ring.cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    ring.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t r; (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* The event text for seq `seq` published at `t`: the template with its placeholders filled. */
static size_t fill_event(const char *tmpl, long seq, double t, char *out, size_t cap) {
    char seqs[32], ts[96], ms[32];
    time_t sec = (time_t)t;
    long millis = (long)((t - (double)sec) * 1000.0);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(seqs, sizeof seqs, "%ld", seq);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    snprintf(ms, sizeof ms, "%lld", (long long)sec * 1000 + millis);
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 32 < cap;) {
        const char *v = NULL;
        size_t skip = 0;
        if (!strncmp(p, "@SEQ@", 5)) v = seqs, skip = 5;
        else if (!strncmp(p, "@TS@", 4)) v = ts, skip = 4;
        else if (!strncmp(p, "@MS@", 4)) v = ms, skip = 4;
        if (v) {
            n += (size_t)snprintf(out + n, cap - n, "%s", v);
            p += skip;
        } else {
            out[n++] = *p++;
        }
    }
    return n;
}

/* One FCGI_STDOUT record for request 1 (what nginx uses), padded to 8 bytes, appended at out. */
static size_t frame(const char *payload, size_t len, unsigned char *out) {
    size_t pad = (8 - len % 8) % 8;
    unsigned char h[8] = {1, FCGI_STDOUT, 0, 1, (unsigned char)(len >> 8), (unsigned char)len, (unsigned char)pad, 0};
    memcpy(out, h, 8);
    memcpy(out + 8, payload, len);
    memset(out + 8 + len, 0, pad);
    return 8 + len + pad;
}

static void close_conn(struct conn *c) {
    if (c->parked >= 0) {
        int last = parked[--nparked];
        parked[c->parked] = last;
        conns[last]->parked = c->parked;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in);
    free(c->out);
    free(c);
    stat_.closed++;
}

/* Writes what the socket takes; keeps the rest and waits for EPOLLOUT. Returns 0 if closed. */
static int send_bytes(struct conn *c, const unsigned char *buf, size_t len) {
    if (c->out_len > c->out_off) {  /* already behind: queue */
        c->out = realloc(c->out, c->out_len + len);
        memcpy(c->out + c->out_len, buf, len);
        c->out_len += len;
        return 1;
    }
    ssize_t n = write(c->fd, buf, len);
    stat_.writes++;
    if (n < 0) {
        if (errno != EAGAIN) { close_conn(c); return 0; }
        n = 0;
    }
    if ((size_t)n == len) return 1;
    stat_.partial++;
    free(c->out);
    c->out = malloc(len - (size_t)n);
    memcpy(c->out, buf + n, len - (size_t)n);
    c->out_len = len - (size_t)n;
    c->out_off = 0;
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLOUT, .data.fd = c->fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    return 1;
}

static void flush_conn(struct conn *c) {
    while (c->out_len > c->out_off) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN) return;
            close_conn(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.fd = c->fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Submits the queued SQEs and reaps every completion there is; a short write is queued as write(2)'s is. */
static void ring_submit_and_reap(const unsigned char *buf, size_t len, unsigned wait) {
    if (ring.pending || wait) {
        long r = syscall(SYS_io_uring_enter, ring.fd, ring.pending, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
        stat_.enters++;
        if (r < 0) die("io_uring_enter");
        ring.inflight += ring.pending;
        ring.pending = 0;
    }
    unsigned head = *ring.cq_head;
    while (head != __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE)) {
        struct io_uring_cqe *cqe = &ring.cqes[head & *ring.cq_mask];
        int fd = (int)cqe->user_data;
        int res = cqe->res;
        head++;
        ring.inflight--;
        struct conn *c = conns[fd];
        if (!c) continue;
        if (res < 0 && res != -EAGAIN) { close_conn(c); continue; }
        size_t done = res < 0 ? 0 : (size_t)res;
        if (done < len) {  /* the rest waits for EPOLLOUT, as with write(2) */
            stat_.partial++;
            c->out = realloc(c->out, c->out_len + len - done);
            memcpy(c->out + c->out_len, buf + done, len - done);
            c->out_len += len - done;
            struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLOUT, .data.fd = c->fd};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
    __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
}

/* One event to every parked stream through io_uring, `batch` SQEs per io_uring_enter(2). */
static void ring_send_all(const unsigned char *buf, size_t len, unsigned batch) {
    for (int k = nparked - 1; k >= 0; k--) {
        struct conn *c = conns[parked[k]];
        if (c->out_len > c->out_off) { send_bytes(c, buf, len); continue; }  /* behind: queue in order */
        unsigned tail = *ring.sq_tail, idx = tail & *ring.sq_mask;
        struct io_uring_sqe *sqe = &ring.sqes[idx];
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_WRITE;
        sqe->fd = c->fd;
        sqe->addr = (unsigned long)buf;
        sqe->len = (unsigned)len;
        sqe->off = (unsigned long long)-1;  /* the file position: sockets have none */
        sqe->user_data = (unsigned long long)c->fd;
        ring.sq_array[idx] = idx;
        __atomic_store_n(ring.sq_tail, tail + 1, __ATOMIC_RELEASE);
        ring.pending++;
        stat_.writes++;
        if (ring.pending == batch) ring_submit_and_reap(buf, len, 0);
    }
    ring_submit_and_reap(buf, len, 0);
    /* The buffer is reused for the next event: wait for the writes still in flight (a full socket). */
    while (ring.inflight > 0) ring_submit_and_reap(buf, len, 1);
}

static unsigned char head_frame[8192];
static size_t head_len;

/* Reads request records; once the empty FCGI_STDIN arrives the stream is answered and parked. */
static void read_request(struct conn *c) {
    unsigned char buf[16384];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN)) { close_conn(c); return; }
        if (n < 0) break;
        c->in = realloc(c->in, c->in_len + (size_t)n);
        memcpy(c->in + c->in_len, buf, (size_t)n);
        c->in_len += (size_t)n;
    }
    size_t pos = 0;
    while (c->in_len - pos >= 8) {
        unsigned char *h = c->in + pos;
        size_t content = ((size_t)h[4] << 8) | h[5], total = 8 + content + h[6];
        if (c->in_len - pos < total) break;
        int request_id = (h[2] << 8) | h[3];
        if (h[1] == FCGI_BEGIN_REQUEST && request_id != 1) {
            /* Every stream shares one frame for request id 1; nginx never uses another. */
            stat_.rejected++;
            close_conn(c);
            return;
        }
        pos += total;
        if (h[1] == FCGI_STDIN && content == 0) {
            free(c->in);
            c->in = NULL;
            c->in_len = 0;
            c->parked = nparked;
            parked[nparked++] = c->fd;
            stat_.parked++;
            /* nginx sends nothing more: from now on only a hang-up is of interest. */
            struct epoll_event ev = {.events = EPOLLRDHUP, .data.fd = c->fd};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
            send_bytes(c, head_frame, head_len);
            return;
        }
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void on_term(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
    const char *sock_path = NULL, *event_path = NULL, *go_path = NULL;
    int count = 100, interval_ms = 100, coalesce = 1, tcp_port = 0, uring = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "relay-floor: %s needs a value\n", a); return 64; }
        if (!strcmp(a, "--socket")) sock_path = v;
        else if (!strcmp(a, "--event")) event_path = v;
        else if (!strcmp(a, "--go")) go_path = v;
        else if (!strcmp(a, "--count")) count = atoi(v);
        else if (!strcmp(a, "--interval-ms")) interval_ms = atoi(v);
        else if (!strcmp(a, "--coalesce")) coalesce = atoi(v);
        else if (!strcmp(a, "--tcp")) tcp_port = atoi(v);
        else if (!strcmp(a, "--uring")) uring = atoi(v);
        else { fprintf(stderr, "relay-floor: unknown option %s\n", a); return 64; }
        i++;
    }
    if ((!sock_path && !tcp_port) || !event_path || !go_path || count < 1 || interval_ms < 1 || coalesce < 1 || uring < 0) {
        fprintf(stderr, "usage: relay-floor --socket PATH|--tcp PORT --event FILE --go FILE [--count N] "
                        "[--interval-ms MS] [--coalesce C] [--uring BATCH]\n");
        return 64;
    }
    char *tmpl = read_file(event_path, NULL);
    if (!tmpl) die(event_path);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    size_t maxfd = rl.rlim_cur > 1u << 20 ? 1u << 20 : rl.rlim_cur;
    conns = calloc(maxfd, sizeof *conns);
    parked = calloc(maxfd, sizeof *parked);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);

    int lfd;
    if (tcp_port) {
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tcp_port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0) die("bind");
    } else {
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(sock_path) >= sizeof sun.sun_path) { fprintf(stderr, "relay-floor: socket path too long\n"); return 64; }
        strcpy(sun.sun_path, sock_path);
        unlink(sock_path);
        if (bind(lfd, (struct sockaddr *)&sun, sizeof sun) < 0) die("bind");
        chmod(sock_path, 0660);
    }
    if (listen(lfd, 4096) < 0) die("listen");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (uring) ring_setup(4096);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = LISTEN_TOKEN};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);

    /* What a stream gets when parked: the headers Herald sends, then the current state. */
    static char text[65536];
    size_t tlen = (size_t)snprintf(text, sizeof text,
                                   "Status: 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                                   "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n\r\nretry: 3000\n\n");
    tlen += fill_event(tmpl, 0, now_s(), text + tlen, sizeof text - tlen);
    head_len = frame(text, tlen, head_frame);

    static unsigned char batch[1 << 20];
    size_t batch_len = 0;
    double t0 = 0;
    int next = 1;  /* the next event to send, 1..count */
    struct epoll_event evs[512];
    while (!stopping) {
        int timeout = 20;
        if (t0 > 0 && next <= count) {
            double due = t0 + (double)next * interval_ms / 1000.0;
            double wait = (due - now_s()) * 1000.0;
            timeout = wait <= 0 ? 0 : (int)wait + (wait > (int)wait);
        } else if (t0 > 0) {
            timeout = 1000;
        }
        int n = epoll_wait(epfd, evs, 512, timeout);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == LISTEN_TOKEN) {
                for (;;) {
                    int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) break;
                    if ((size_t)cfd >= maxfd) { close(cfd); continue; }
                    struct conn *c = calloc(1, sizeof *c);
                    c->fd = cfd;
                    c->parked = -1;
                    conns[cfd] = c;
                    stat_.accepted++;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            struct conn *c = conns[fd];
            if (!c) continue;
            if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                close_conn(c);
            } else if (c->parked < 0) {
                read_request(c);
            } else if (evs[i].events & EPOLLOUT) {
                flush_conn(c);
            }
        }
        if (t0 == 0) {
            char *go = read_file(go_path, NULL);
            if (go) {
                t0 = atof(go);
                free(go);
            }
            continue;
        }
        while (next <= count && now_s() >= t0 + (double)next * interval_ms / 1000.0) {
            char event[65536];
            size_t len = fill_event(tmpl, next, now_s(), event, sizeof event);
            batch_len += frame(event, len, batch + batch_len);
            stat_.events++;
            if (next % coalesce == 0 || next == count) {
                double w0 = now_s();
                if (uring) {
                    ring_send_all(batch, batch_len, (unsigned)uring);
                } else {
                    for (int k = nparked - 1; k >= 0; k--) {  /* backwards: a close moves the last one here */
                        send_bytes(conns[parked[k]], batch, batch_len);
                    }
                }
                stat_.write_loop_s += now_s() - w0;
                batch_len = 0;
            }
            next++;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "{\"accepted\": %ld, \"parked\": %ld, \"open\": %d, \"closed\": %ld, \"rejected\": %ld, \"events\": %ld, "
            "\"writes\": %ld, \"partial_writes\": %ld, \"uring_enters\": %ld, \"write_loop_s\": %.4f, \"user_s\": %.3f, "
            "\"sys_s\": %.3f}\n",
            stat_.accepted, stat_.parked, nparked, stat_.closed, stat_.rejected, stat_.events, stat_.writes,
            stat_.partial, stat_.enters, stat_.write_loop_s, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
            ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    if (sock_path && !tcp_port) unlink(sock_path);
    return 0;
}

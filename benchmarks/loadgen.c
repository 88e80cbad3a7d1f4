/*
 * loadgen: a request/response load client for echo servers, in C, so that the
 * client is not what limits the figures.
 *
 *   loadgen PORT CONNECTIONS SIZE SECONDS [WARMUP_SECONDS]
 *   loadgen --server PORT        a one-thread epoll echo server (the ceiling)
 *
 * Each of CONNECTIONS sockets to 127.0.0.1:PORT sends SIZE bytes, waits
 * until SIZE bytes have come back, and sends again (closed loop, one message
 * in flight per connection). One thread, epoll, non-blocking sockets,
 * TCP_NODELAY. Loopback only: the address is fixed to 127.0.0.1.
 * Stops by itself after WARMUP_SECONDS + SECONDS. Prints one line of JSON:
 *   {"messages": N, "seconds": S, "rate": R, "p50_us": A, "p99_us": B, ...}
 * Latency is per message, from the first byte sent to the last byte back,
 * counted in a histogram of 1 µs buckets up to 1 s (longer ones in the last).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_BUCKETS 1000000

struct conn {
    int fd;
    size_t sent;      /* bytes of the current message sent */
    size_t received;  /* bytes of the current echo received */
    double started;   /* when the current message's first byte went */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

static int run_server(int port) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = loopback(port);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, 4096) < 0) die("listen");
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    fprintf(stderr, "listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static char buf[256 * 1024];
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) continue;
                close(fd);
                continue;
            }
            /* Blocking-style write of what came: fine for a closed-loop client. */
            ssize_t off = 0;
            while (off < got) {
                ssize_t w = send(fd, buf + off, (size_t)(got - off), MSG_NOSIGNAL);
                if (w < 0 && errno == EAGAIN) continue;
                if (w < 0) break;
                off += w;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--server") == 0) return run_server(atoi(argv[2]));
    if (argc < 5) {
        fprintf(stderr, "usage: loadgen PORT CONNECTIONS SIZE SECONDS [WARMUP]\n"
                        "       loadgen --server PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);
    int nconn = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    double warmup = argc > 5 ? atof(argv[5]) : 0.5;
    if (nconn < 1 || size < 1 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 2;
    }
    char *out = malloc(size);
    char *in = malloc(size < 262144 ? 262144 : size);
    memset(out, 'x', size);
    uint32_t *hist = calloc(HIST_BUCKETS, sizeof *hist);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    int ep = epoll_create1(0);
    int one = 1;
    struct sockaddr_in addr = loopback(port);
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    double start = now();
    double measure_from = start + warmup;
    double stop = measure_from + seconds;
    uint64_t messages = 0, all_messages = 0;
    struct epoll_event events[1024];
    double t = start;
    while (t < stop) {
        int n = epoll_wait(ep, events, 1024, 100);
        t = now();
        for (int e = 0; e < n; e++) {
            struct conn *c = &conns[events[e].data.u32];
            if (c->sent < size) {
                if (c->sent == 0) c->started = t;
                ssize_t w = send(c->fd, out + c->sent, size - c->sent, MSG_NOSIGNAL);
                if (w > 0) c->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN) die("send");
                if (c->sent == size) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = events[e].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            for (;;) {
                ssize_t r = recv(c->fd, in, size - c->received < 262144 ? size - c->received : 262144, 0);
                if (r == 0) {
                    fprintf(stderr, "loadgen: the server closed a connection\n");
                    return 1;
                }
                if (r < 0) {
                    if (errno == EAGAIN) break;
                    die("recv");
                }
                c->received += (size_t)r;
                if (c->received < size) continue;
                all_messages++;
                if (c->started >= measure_from) {
                    double us = (t - c->started) * 1e6;
                    size_t bucket = us < HIST_BUCKETS - 1 ? (size_t)us : HIST_BUCKETS - 1;
                    hist[bucket]++;
                    messages++;
                }
                /* Next message: try to send it at once. */
                c->received = 0;
                c->started = t;
                ssize_t w = send(c->fd, out, size, MSG_NOSIGNAL);
                c->sent = w > 0 ? (size_t)w : 0;
                if (w < 0 && errno != EAGAIN) die("send");
                if (c->sent < size) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = events[e].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
                break;
            }
        }
    }
    double elapsed = t - measure_from;
    uint64_t seen = 0, p50 = 0, p99 = 0, p999 = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (!p50 && seen * 2 >= messages) p50 = b + 1;
        if (!p99 && seen * 100 >= messages * 99) p99 = b + 1;
        if (!p999 && seen * 1000 >= messages * 999) p999 = b + 1;
    }
    printf("{\"messages\": %llu, \"seconds\": %.3f, \"rate\": %.1f, \"p50_us\": %llu, \"p99_us\": %llu,"
           " \"p999_us\": %llu, \"connections\": %d, \"size\": %zu, \"all_messages\": %llu}\n",
           (unsigned long long)messages, elapsed, messages / elapsed, (unsigned long long)p50,
           (unsigned long long)p99, (unsigned long long)p999, nconn, size, (unsigned long long)all_messages);
    for (int i = 0; i < nconn; i++) close(conns[i].fd);
    return messages ? 0 : 1;
}

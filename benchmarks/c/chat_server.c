/* Baseline, not part of chatd: a minimal C epoll chat server, the same
 * protocol as the other baselines (the first line is the nickname, then
 * every line is said to all others as "<NICK> LINE").
 *     cc -O2 -o chat_server chat_server.c && ./chat_server PORT
 * Level-triggered epoll, TCP_NODELAY, and each recipient's output gathered
 * during one epoll batch and written once at its end.  No limits, no
 * cleaning, no encodings, lines up to 1 KiB: a ceiling to measure against,
 * not a product. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct client {
    int fd, dirty, closed, waiting;  /* waiting: registered for EPOLLOUT */
    char name[64];
    size_t name_length;
    char in[1024];  /* a partial line; longer lines are dropped */
    size_t in_length;
    char *out;
    size_t out_length, out_capacity;
    struct client *prev, *next;  /* everyone logged in */
} client_t;

static client_t everyone = {.prev = &everyone, .next = &everyone};
static client_t **dirty;
static size_t dirty_count, dirty_capacity;
static int epoll;

static void append(client_t *c, const char *data, size_t length) {
    if (c->out_length + length > c->out_capacity) {
        c->out_capacity = (c->out_length + length) * 2;
        c->out = realloc(c->out, c->out_capacity);
    }
    memcpy(c->out + c->out_length, data, length);
    c->out_length += length;
    if (!c->dirty) {
        c->dirty = 1;
        if (dirty_count == dirty_capacity) {
            dirty_capacity = dirty_capacity ? dirty_capacity * 2 : 1024;
            dirty = realloc(dirty, dirty_capacity * sizeof *dirty);
        }
        dirty[dirty_count++] = c;
    }
}

/* A dropped client is closed but not freed: this baseline lives for one benchmark run. */
static void drop(client_t *c) {
    if (c->closed) return;
    c->closed = 1;
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->next) { c->prev->next = c->next; c->next->prev = c->prev; }
}

static void line(client_t *from, const char *text, size_t length) {
    if (length && text[length - 1] == '\r') length--;
    if (!from->next) {  /* the nickname */
        from->name_length = length < sizeof from->name ? length : sizeof from->name - 1;
        memcpy(from->name, text, from->name_length);
        from->next = everyone.next; from->prev = &everyone;
        everyone.next->prev = from; everyone.next = from;
        append(from, "*** Hello ", 10);
        append(from, from->name, from->name_length);
        append(from, "!\r\n", 3);
        return;
    }
    char message[1200];
    size_t size = 0;
    message[size++] = '<';
    memcpy(message + size, from->name, from->name_length); size += from->name_length;
    message[size++] = '>'; message[size++] = ' ';
    memcpy(message + size, text, length); size += length;
    message[size++] = '\r'; message[size++] = '\n';
    for (client_t *to = everyone.next; to != &everyone; to = to->next)
        if (to != from) append(to, message, size);
}

static void flush(client_t *c) {
    c->dirty = 0;
    if (c->closed) return;
    size_t done = 0;
    while (done < c->out_length) {
        ssize_t written = write(c->fd, c->out + done, c->out_length - done);
        if (written < 0) {
            if (errno == EAGAIN) break;
            drop(c);
            return;
        }
        done += written;
    }
    memmove(c->out, c->out + done, c->out_length - done);
    c->out_length -= done;
    if (c->waiting != (c->out_length > 0)) {
        c->waiting = c->out_length > 0;
        struct epoll_event event = {.events = EPOLLIN | (c->waiting ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(epoll, EPOLL_CTL_MOD, c->fd, &event);
    }
}

int main(int argc, char **argv) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) { limit.rlim_cur = limit.rlim_max; setrlimit(RLIMIT_NOFILE, &limit); }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argc > 1 ? argv[1] : "0")),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 1024) < 0) {
        perror("listen");
        return 1;
    }
    printf("listening on %s\n", argv[1]);
    fflush(stdout);
    epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    struct epoll_event events[256];
    for (;;) {
        int ready = epoll_wait(epoll, events, 256, -1);
        for (int e = 0; e < ready; e++) {
            client_t *c = events[e].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    client_t *fresh = calloc(1, sizeof *fresh);
                    fresh->fd = fd;
                    struct epoll_event added = {.events = EPOLLIN, .data.ptr = fresh};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &added);
                }
                continue;
            }
            if (c->closed) continue;
            if (events[e].events & EPOLLOUT) append(c, "", 0);  /* writable again: flush at the batch's end */
            if (!(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            ssize_t got = read(c->fd, c->in + c->in_length, sizeof c->in - c->in_length);
            if (got < 0 && errno == EAGAIN) continue;
            if (got <= 0) { drop(c); continue; }
            c->in_length += got;
            char *start = c->in, *end = c->in + c->in_length, *newline;
            while ((newline = memchr(start, '\n', end - start))) {
                line(c, start, newline - start);
                start = newline + 1;
            }
            c->in_length = end - start;
            if (c->in_length == sizeof c->in) c->in_length = 0;  /* an overlong line: drop it */
            memmove(c->in, start, c->in_length);
        }
        for (size_t i = 0; i < dirty_count; i++) flush(dirty[i]);
        dirty_count = 0;
    }
}

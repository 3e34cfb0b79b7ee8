/* The benchmarks' C load generator (loopback only, bounded), the same
 * protocol and checks as loadgen.py, written so that it is not the limit.
 *
 *   loadgen chat PORT CLIENTS SENDERS LINES SIZE RATE TIMEOUT FIRST STEP
 *       Drive the clients FIRST, FIRST+STEP, ... below CLIENTS; clients with
 *       an index below SENDERS send LINES lines of SIZE bytes each, as fast
 *       as the server takes them (RATE 0) or at RATE lines/s.  Log in, print
 *       "ready", wait for a line on stdin, run, print one JSON result line.
 *   loadgen chat ... CHANNELS JOIN
 *       The same in CHANNELS channels: client i is in channel i % CHANNELS and
 *       counts only the lines of senders in its own channel.  With JOIN 1 each
 *       client first sends "/join #chK" and waits for "*** You joined" (a
 *       server with channels); with JOIN 0 the server is one room, every
 *       client gets every line and skips the other channels' (the baselines).
 *   loadgen chat ... CHANNELS JOIN web
 *       The same over chatd's WebSocket (PORT is its web port), in one channel
 *       (CHANNELS 0): a client opens /chat, sends {"type": "login", ...}, and
 *       reads up to its "logged-in" message; a line is a "say" message; what
 *       arrives is parsed frame by frame, and each "said" event's text is
 *       checked as a telnet line is.
 *   loadgen chat ... CHANNELS JOIN irc
 *       The same over chatd's IRC port (PORT), in one channel (CHANNELS 0): a
 *       client registers (NICK, USER) and reads up to the end of its default
 *       channel's NAMES (366); a line is "PRIVMSG #lobby :m ..."; each
 *       PRIVMSG that arrives is checked as a telnet line is.
 *   loadgen idle PORT CLIENTS [irc|web]
 *       Log CLIENTS clients in (over IRC, registered; over the WebSocket, logged in), print "ready", hold
 *       them until stdin closes.
 *   loadgen udp PORT SECONDS INFLIGHT SIZE
 *       Keep INFLIGHT datagrams at a UDP echo server; print echoes/s.
 *
 * With LOADGEN_OTHERS_ONLY=1 in the environment, a latency sample is taken
 * only of lines from senders another of the STEP processes drives: with the
 * processes on different nodes of a cluster, the cross-node deliveries.
 *
 * With LOADGEN_TLS=1, every client speaks TLS (OpenSSL; the certificate is
 * not checked: loopback only), on any door: a batch of connections makes
 * its handshakes together, then logs in as over plain TCP, and the run
 * reads and writes through TLS.
 *
 * A client logs in by sending "cINDEX" (at once; with LOADGEN_GREETING_FIRST=1,
 * once it has read the greeting) and reading up to "*** Hello".  A
 * sender's line is "m SENDER SEQ SENT_NS xxx...": every receiver checks that
 * each sender's SEQ arrives exactly once and in order, and every 8th SEQ is a
 * latency sample (CLOCK_MONOTONIC, which Python's time.monotonic_ns reads too).
 * Lines that do not carry "<cN> m " (server notices) are skipped. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE (1 << 20)
#define SAMPLE_EVERY 8
#define LOGIN_BATCH 200

/* Over chatd's WebSocket (web mode), or its IRC port (irc mode), rather than telnet lines. */
static int web, irc;
static int greeting_first;  /* LOADGEN_GREETING_FIRST=1: telnet clients wait for the greeting before their nickname */
/* LOADGEN_OTHERS_ONLY: sample only lines from senders of other processes (STEP of them). */
static int others_only_step;
/* LOADGEN_TLS: every client over TLS, with this context. */
static SSL_CTX *tls;

typedef struct {
    int fd, index;
    SSL *ssl;                /* over TLS: the client's TLS connection */
    size_t tls_retry;        /* over TLS: the length of a write to repeat as it was (OpenSSL's rule) */
    char *partial;           /* an incomplete last line (or frame) from the previous read */
    size_t partial_length, partial_capacity;
    uint32_t *next_seq;      /* per sender */
    char *out;               /* a sender's unsent bytes */
    size_t out_start, out_end, out_capacity;
    long sent, to_send;
} client_t;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void die(const char *what) { perror(what); exit(2); }

/* A TLS result as read()/send() would give it: -1 with EAGAIN for "again later", 0 for the end. */
static ssize_t tls_result(client_t *c, int result) {
    if (result > 0) return result;
    switch (SSL_get_error(c->ssl, result)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: ERR_print_errors_fp(stderr); errno = EIO; return -1;
    }
}

/* Read or write on a client's connection, through TLS when it has it (blocking while the socket is). */
static ssize_t client_read(client_t *c, void *buffer, size_t size) {
    return c->ssl ? tls_result(c, SSL_read(c->ssl, buffer, (int)size)) : read(c->fd, buffer, size);
}

static ssize_t client_write(client_t *c, const void *data, size_t size) {
    if (!c->ssl) return write(c->fd, data, size);
    if (c->tls_retry) size = c->tls_retry;  /* a write that could not finish is repeated with the same length */
    ssize_t written = tls_result(c, SSL_write(c->ssl, data, (int)size));
    c->tls_retry = written < 0 && errno == EAGAIN ? size : 0;
    return written;
}

/* Without blocking (the run; over TLS the socket is non-blocking by then). */
static ssize_t client_send(client_t *c, const void *data, size_t size) {
    return c->ssl ? client_write(c, data, size) : send(c->fd, data, size, MSG_DONTWAIT);
}

static ssize_t client_recv(client_t *c, void *buffer, size_t size) {
    return c->ssl ? client_read(c, buffer, size) : recv(c->fd, buffer, size, MSG_DONTWAIT);
}

static void set_blocking(int fd, int blocking) {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK);
}

/* The TLS handshakes of clients [start, end), all at once: each socket non-blocking until its handshake is done. */
static void tls_handshakes(client_t *clients, int start, int end) {
    int count = end - start, left = count;
    if (count <= 0) return;
    struct pollfd *waiting = calloc(count, sizeof *waiting);
    for (int i = 0; i < count; i++) {
        client_t *c = &clients[start + i];
        c->ssl = SSL_new(tls);
        if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) die("SSL_new");
        set_blocking(c->fd, 0);
        waiting[i].fd = c->fd;
        waiting[i].events = POLLOUT;
    }
    while (left) {
        for (int i = 0; i < count; i++) {
            client_t *c = &clients[start + i];
            if (waiting[i].fd < 0 || !waiting[i].revents) continue;
            int result = SSL_connect(c->ssl);
            if (result == 1) {
                set_blocking(c->fd, 1);
                waiting[i].fd = -1;
                left--;
                continue;
            }
            int error = SSL_get_error(c->ssl, result);
            if (error == SSL_ERROR_WANT_READ) waiting[i].events = POLLIN;
            else if (error == SSL_ERROR_WANT_WRITE) waiting[i].events = POLLOUT;
            else { fprintf(stderr, "client %d: TLS handshake failed\n", c->index); ERR_print_errors_fp(stderr); exit(2); }
        }
        if (left && poll(waiting, count, 10000) <= 0) { fprintf(stderr, "TLS handshakes timed out\n"); exit(2); }
    }
    free(waiting);
}

static void raise_fd_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/* A client's WebSocket frame holding `payload` (RFC 6455, 5.2): FIN and the
 * text opcode, the length, and a mask key of zeros (a client must mask; XOR
 * with zeros leaves the payload as it is).  Returns the frame's length. */
static size_t web_frame(char *out, const char *payload, size_t length) {
    size_t header = 0;
    out[header++] = (char)0x81;
    if (length < 126) {
        out[header++] = (char)(0x80 | length);
    } else {
        out[header++] = (char)(0x80 | 126);
        out[header++] = (char)(length >> 8);
        out[header++] = (char)(length & 0xff);
    }
    memset(out + header, 0, 4);
    header += 4;
    memcpy(out + header, payload, length);
    return header + length;
}

/* The length of the server's (unmasked) frame at p, header included; 0 if it is not all in [p, end). */
static size_t whole_frame(const char *p, const char *end, size_t *header) {
    const unsigned char *u = (const unsigned char *)p;
    if (end - p < 2) return 0;
    size_t length = u[1] & 0x7f, size = 2;
    if (length == 126) {
        if (end - p < 4) return 0;
        length = (size_t)u[2] << 8 | u[3];
        size = 4;
    } else if (length == 127) {
        if (end - p < 10) return 0;
        length = 0;
        for (int i = 2; i < 10; i++) length = length << 8 | u[i];
        size = 10;
    }
    *header = size;
    return (size_t)(end - p) >= size + length ? size + length : 0;
}

static void send_message(client_t *c, const char *payload) {
    char frame[512];
    size_t length = web_frame(frame, payload, strlen(payload));
    if (client_write(c, frame, length) != (ssize_t)length) die("write message");
}

/* Read frames until one whose payload holds `wanted`; what follows it is kept as the client's partial input. */
static void read_until_message(client_t *c, char *buffer, size_t size, size_t have, const char *wanted, const char *doing) {
    for (;;) {
        const char *p = buffer, *end = buffer + have;
        size_t header, length;
        while ((length = whole_frame(p, end, &header))) {
            int found = memmem(p + header, length - header, wanted, strlen(wanted)) != NULL;
            if (!found && memmem(p + header, length - header, "\"type\":\"error\"", strlen("\"type\":\"error\""))) {
                fprintf(stderr, "client %d: refused %s: %.*s\n", c->index, doing, (int)(length - header), p + header);
                exit(2);
            }
            p += length;
            if (found) {
                c->partial_length = end - p;
                c->partial = realloc(c->partial, c->partial_length + 1);
                memcpy(c->partial, p, c->partial_length);
                c->partial_capacity = c->partial_length + 1;
                return;
            }
        }
        memmove(buffer, p, end - p);
        have = end - p;
        ssize_t got = client_read(c, buffer + have, size - have);
        if (got <= 0) { fprintf(stderr, "client %d: closed %s\n", c->index, doing); exit(2); }
        have += got;
    }
}

/* Open chatd's WebSocket and log in: the handshake, then the login message, up to "logged-in". */
static void web_log_in(client_t *c, char *buffer, size_t size) {
    size_t have = 0;
    char *end_of_headers = NULL;
    while (!end_of_headers) {
        ssize_t got = client_read(c, buffer + have, size - 1 - have);
        if (got <= 0) { fprintf(stderr, "client %d: closed during the handshake\n", c->index); exit(2); }
        have += got;
        buffer[have] = 0;
        end_of_headers = strstr(buffer, "\r\n\r\n");
    }
    if (strncmp(buffer, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "client %d: WebSocket refused: %.40s\n", c->index, buffer);
        exit(2);
    }
    char login[64];
    snprintf(login, sizeof login, "{\"type\":\"login\",\"nick\":\"c%d\"}", c->index);
    send_message(c, login);
    size_t rest = buffer + have - (end_of_headers + 4);
    memmove(buffer, end_of_headers + 4, rest);
    read_until_message(c, buffer, size, rest, "\"type\":\"logged-in\"", "during login");
}

/* As a person at a telnet prompt: read up to the question before typing a
 * nickname (chatd asks it after 50 ms of silence; a client that types at once
 * is answered at once). */
static void wait_for_greeting(client_t *c, char *buffer, size_t size) {
    size_t have = 0;
    buffer[0] = 0;
    while (!strstr(buffer, "*** Choose a nickname:")) {
        ssize_t got = client_read(c, buffer + have, size - 1 - have);
        if (got <= 0) { fprintf(stderr, "client %d: closed before the greeting\n", c->index); exit(2); }
        have += got;
        buffer[have] = 0;
    }
}

/* Connect and log in clients [0, count) of `clients`, a batch at a time so
 * the server's accept backlog never overflows. */
static void log_in(client_t *clients, int count, int port) {
    struct sockaddr_in address = loopback(port);
    char *buffer = malloc(65536);
    for (int start = 0; start < count; start += LOGIN_BATCH) {
        int end = start + LOGIN_BATCH < count ? start + LOGIN_BATCH : count;
        for (int i = start; i < end; i++) {
            client_t *c = &clients[i];
            c->fd = socket(AF_INET, SOCK_STREAM, 0);
            if (c->fd < 0) die("socket");
            if (connect(c->fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (tls) tls_handshakes(clients, start, end);
        if (greeting_first && !web && !irc)
            for (int i = start; i < end; i++) wait_for_greeting(&clients[i], buffer, 65536);
        for (int i = start; i < end; i++) {
            client_t *c = &clients[i];
            char first[256];
            int length = web ? snprintf(first, sizeof first,
                                        "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                        "Sec-WebSocket-Version: 13\r\n\r\n", port)
                       : irc ? snprintf(first, sizeof first, "NICK c%d\r\nUSER c%d 0 * :c%d\r\n", c->index, c->index,
                                        c->index)
                             : snprintf(first, sizeof first, "c%d\r\n", c->index);
            if (client_write(c, first, length) != length) die("write nickname");
        }
        for (int i = start; i < end; i++) {
            client_t *c = &clients[i];
            if (web) {
                web_log_in(c, buffer, 65536);
                continue;
            }
            size_t have = 0;
            char *hello = NULL;
            char marker[64];  /* the line that ends the login: the hello, or the end of the lobby's NAMES */
            if (irc) snprintf(marker, sizeof marker, " 366 c%d #", c->index);
            else strcpy(marker, "*** Hello");
            while (!(hello && memchr(hello, '\n', buffer + have - hello))) {
                ssize_t got = client_read(c, buffer + have, 65535 - have);
                if (got <= 0) { fprintf(stderr, "client %d: closed during login\n", c->index); exit(2); }
                have += got;
                buffer[have] = 0;
                hello = strstr(buffer, marker);
                if (!hello && (strstr(buffer, "*** Error") || (irc && strstr(buffer, "ERROR :")))) {  /* refused: say so, do not hang */
                    fprintf(stderr, "client %d: refused during login: %s\n", c->index, strstr(buffer, "*** Error"));
                    exit(2);
                }
            }
            char *rest = (char *)memchr(hello, '\n', buffer + have - hello) + 1;
            c->partial_length = buffer + have - rest;
            c->partial = malloc(c->partial_length + 1);
            memcpy(c->partial, rest, c->partial_length);
            c->partial_capacity = c->partial_length + 1;
        }
    }
    free(buffer);
}

/* Each client joins its channel, #ch(index % channels), and reads up to "*** You joined". */
static void join_channels(client_t *clients, int count, int channels) {
    size_t size = 1 << 20;
    char *buffer = malloc(size);
    for (int i = 0; i < count; i++) {
        char line[64];
        int length = snprintf(line, sizeof line, "/join #ch%d\r\n", clients[i].index % channels);
        if (client_write(&clients[i], line, length) != length) die("write join");
    }
    for (int i = 0; i < count; i++) {
        client_t *c = &clients[i];
        size_t have = c->partial_length;
        memcpy(buffer, c->partial, have);
        buffer[have] = 0;
        char *joined = strstr(buffer, "*** You joined");
        while (!(joined && memchr(joined, '\n', buffer + have - joined))) {
            ssize_t got = client_read(c, buffer + have, size - 1 - have);
            if (got <= 0) { fprintf(stderr, "client %d: closed while joining\n", c->index); exit(2); }
            have += got;
            buffer[have] = 0;
            joined = strstr(buffer, "*** You joined");
            if (!joined && strstr(buffer, "*** Error")) {
                fprintf(stderr, "client %d: refused a channel: %s\n", c->index, strstr(buffer, "*** Error"));
                exit(2);
            }
        }
        char *rest = (char *)memchr(joined, '\n', buffer + have - joined) + 1;
        c->partial_length = buffer + have - rest;
        c->partial = realloc(c->partial, c->partial_length + 1);
        memcpy(c->partial, rest, c->partial_length);
        c->partial_capacity = c->partial_length + 1;
    }
    free(buffer);
}

static void wait_for_go(void) {
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) exit(0);
}

static int idle(int port, int count) {
    client_t *clients = calloc(count, sizeof *clients);
    for (int i = 0; i < count; i++) clients[i].index = i;
    log_in(clients, count, port);
    printf("ready\n");
    fflush(stdout);
    char line[16];
    while (fgets(line, sizeof line, stdin)) {}
    return 0;
}

static void make_lines(client_t *c, long count, int size) {
    if (c->out_start > 0) {  /* move the unsent bytes to the front */
        memmove(c->out, c->out + c->out_start, c->out_end - c->out_start);
        c->out_end -= c->out_start;
        c->out_start = 0;
    }
    size_t need = c->out_end + (size_t)count * (size + 64);
    if (need > c->out_capacity) {
        c->out_capacity = need * 2;
        c->out = realloc(c->out, c->out_capacity);
    }
    int64_t sent_ns = now_ns();
    if (irc) {  /* each line a PRIVMSG to the lobby */
        for (long i = 0; i < count; i++) {
            int length = snprintf(c->out + c->out_end, 96, "PRIVMSG #lobby :m %d %ld %lld ", c->index, c->sent,
                                  (long long)sent_ns);
            int padding = size - 2 - (length - 16);
            if (padding < 1) padding = 1;
            memset(c->out + c->out_end + length, 'x', padding);
            c->out_end += length + padding;
            c->out[c->out_end++] = '\r';
            c->out[c->out_end++] = '\n';
            c->sent++;
        }
        return;
    }
    if (web) {  /* each line a "say" message in its frame */
        char text[512];
        for (long i = 0; i < count; i++) {
            int length = snprintf(text, 64, "{\"type\":\"say\",\"text\":\"m %d %ld %lld ", c->index, c->sent,
                                  (long long)sent_ns);
            int padding = size - 2 - (length - 22);
            if (padding < 1) padding = 1;
            memset(text + length, 'x', padding);
            memcpy(text + length + padding, "\"}", 2);
            c->out_end += web_frame(c->out + c->out_end, text, length + padding + 2);
            c->sent++;
        }
        return;
    }
    for (long i = 0; i < count; i++) {
        int length = snprintf(c->out + c->out_end, 64, "m %d %ld %lld ", c->index, c->sent, (long long)sent_ns);
        int padding = size - 2 - length;
        if (padding < 1) padding = 1;
        memset(c->out + c->out_end + length, 'x', padding);
        c->out_end += length + padding;
        c->out[c->out_end++] = '\r';
        c->out[c->out_end++] = '\n';
        c->sent++;
    }
}

static long parse_number(const char **cursor, const char *end) {
    long value = 0;
    const char *p = *cursor;
    while (p < end && *p >= '0' && *p <= '9') value = value * 10 + (*p++ - '0');
    *cursor = p;
    return value;
}

typedef struct {
    long deliveries, lost, duplicated, reordered;
    double *latencies;
    size_t latency_count, latency_capacity;
} tally_t;

static void check_one(client_t *c, long sender, long seq, int64_t sent_ns, int64_t arrived, tally_t *tally);

/* Check every complete line in [data, end) for client c; return where the incomplete rest begins. */
static const char *check_lines(client_t *c, const char *data, const char *end, int senders, int channels,
                               tally_t *tally) {
    int64_t arrived = now_ns();
    for (;;) {
        const char *newline = memchr(data, '\n', end - data);
        if (!newline) return data;
        const char *p = data;
        data = newline + 1;
        if (newline - p < 6 || p[0] != '<' || p[1] != 'c') continue;
        p += 2;
        long sender = parse_number(&p, newline);
        if (newline - p < 4 || memcmp(p, "> m ", 4) != 0 || sender >= senders) continue;
        if (channels && sender % channels != c->index % channels) continue;  /* another channel's */
        p += 4;
        parse_number(&p, newline);  /* the sender again */
        p++;
        long seq = parse_number(&p, newline);
        p++;
        check_one(c, sender, seq, parse_number(&p, newline), arrived, tally);
    }
}

/* Check every complete IRC line in [data, end): each PRIVMSG's text "m SENDER SEQ SENT_NS ...". */
static const char *check_irc_lines(client_t *c, const char *data, const char *end, int senders, tally_t *tally) {
    int64_t arrived = now_ns();
    for (;;) {
        const char *newline = memchr(data, '\n', end - data);
        if (!newline) return data;
        const char *p = memmem(data, newline - data, " PRIVMSG #", 10);
        data = newline + 1;
        if (!p) continue;
        p = memmem(p, newline - p, " :m ", 4);
        if (!p) continue;
        p += 4;
        long sender = parse_number(&p, newline);
        if (sender >= senders) continue;
        p++;
        long seq = parse_number(&p, newline);
        p++;
        check_one(c, sender, seq, parse_number(&p, newline), arrived, tally);
    }
}

/* Check every complete frame in [data, end): each "said" event's text "m SENDER SEQ SENT_NS ...". */
static const char *check_frames(client_t *c, const char *data, const char *end, int senders, tally_t *tally) {
    static const char said[] = "\",\"m ";
    int64_t arrived = now_ns();
    size_t header, length;
    while ((length = whole_frame(data, end, &header))) {
        const char *p = data + header, *frame_end = data + length;
        data = frame_end;
        while ((p = memmem(p, frame_end - p, said, sizeof said - 1))) {
            p += sizeof said - 1;
            long sender = parse_number(&p, frame_end);
            if (sender >= senders) continue;
            p++;
            long seq = parse_number(&p, frame_end);
            p++;
            check_one(c, sender, seq, parse_number(&p, frame_end), arrived, tally);
        }
    }
    return data;
}

static void check_one(client_t *c, long sender, long seq, int64_t sent_ns, int64_t arrived, tally_t *tally) {
    uint32_t want = c->next_seq[sender];
    if (seq == want) {
        c->next_seq[sender] = seq + 1;
    } else if (seq > want) {
        tally->lost += seq - want;
        c->next_seq[sender] = seq + 1;
    } else {
        tally->duplicated++;
        tally->reordered++;
    }
    tally->deliveries++;
    if (seq % SAMPLE_EVERY == 0 && !(others_only_step && sender % others_only_step == c->index % others_only_step)) {
        if (tally->latency_count == tally->latency_capacity) {
            tally->latency_capacity = tally->latency_capacity ? tally->latency_capacity * 2 : 65536;
            tally->latencies = realloc(tally->latencies, tally->latency_capacity * sizeof(double));
        }
        tally->latencies[tally->latency_count++] = (arrived - sent_ns) / 1e6;
    }
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static int chat(int port, int total, int senders, long lines, int size, double rate, double timeout, int first, int step,
                int channels, int join) {
    double cpu_before = cpu_seconds();
    const char *others_only = getenv("LOADGEN_OTHERS_ONLY");
    if (others_only && strcmp(others_only, "1") == 0) others_only_step = step;
    int count = first < total ? (total - first + step - 1) / step : 0;
    client_t *clients = calloc(count, sizeof *clients);
    for (int i = 0; i < count; i++) {
        clients[i].index = first + i * step;
        clients[i].next_seq = calloc(senders ? senders : 1, sizeof(uint32_t));
        if (clients[i].index < senders) clients[i].to_send = lines;
    }
    log_in(clients, count, port);
    if (channels && join) join_channels(clients, count, channels);
    int epoll = epoll_create1(0);
    long expected = 0;
    int talkers = 0;
    for (int i = 0; i < count; i++) {
        if (clients[i].ssl) set_blocking(clients[i].fd, 0);  /* TLS reads and writes cannot say MSG_DONTWAIT */
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = &clients[i]};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, clients[i].fd, &event) < 0) die("epoll_ctl");
        int sends = clients[i].index < senders;
        for (int s = 0; s < senders; s++)
            if (s != clients[i].index && (!channels || s % channels == clients[i].index % channels)) expected += lines;
        talkers += sends;
    }
    client_t **talking = calloc(talkers ? talkers : 1, sizeof *talking);
    for (int i = 0, t = 0; i < count; i++)
        if (clients[i].to_send) talking[t++] = &clients[i];
    tally_t tally = {0};
    struct epoll_event events[256];
    wait_for_go();
    double start = now_seconds(), deadline = start + timeout;
    while (tally.deliveries < expected && now_seconds() < deadline) {
        int pending = 0;
        double now = now_seconds();
        for (int t = 0; t < talkers; t++) {
            client_t *c = talking[t];
            if (c->sent < c->to_send && c->out_end - c->out_start < 65536) {
                long due = c->to_send - c->sent;
                if (rate > 0) {
                    long allowed = (long)((now - start) * rate) + 1 - c->sent;
                    if (allowed < due) due = allowed;
                }
                if (due > 256) due = 256;
                if (due > 0) make_lines(c, due, size);
            }
            if (c->out_end > c->out_start) {
                ssize_t written = client_send(c, c->out + c->out_start, c->out_end - c->out_start);
                if (written > 0) c->out_start += written;
                else if (written < 0 && errno != EAGAIN) die("send");
                pending |= c->out_end > c->out_start || (rate == 0 && c->sent < c->to_send);
            }
        }
        int ready = epoll_wait(epoll, events, 256, pending ? 0 : 1);
        for (int e = 0; e < ready; e++) {
            client_t *c = events[e].data.ptr;
            /* Read onto what is left of the last read, in the client's own
             * buffer: a web frame can span many reads, and copying it
             * again at each one would make its reading quadratic.  Over
             * TLS, a read gives one record at most: read until there is no
             * more (epoll cannot see what OpenSSL holds). */
            for (;;) {
                if (c->partial_capacity - c->partial_length < READ_SIZE / 4) {
                    c->partial_capacity = c->partial_length + READ_SIZE;
                    c->partial = realloc(c->partial, c->partial_capacity);
                }
                ssize_t got = client_recv(c, c->partial + c->partial_length, c->partial_capacity - c->partial_length);
                if (got < 0 && errno == EAGAIN) break;
                if (got <= 0) { fprintf(stderr, "server closed client %d\n", c->index); exit(2); }
                const char *end = c->partial + c->partial_length + got;
                const char *rest = web ? check_frames(c, c->partial, end, senders, &tally)
                                 : irc ? check_irc_lines(c, c->partial, end, senders, &tally)
                                       : check_lines(c, c->partial, end, senders, channels, &tally);
                c->partial_length = end - rest;
                memmove(c->partial, rest, c->partial_length);
                if (!c->ssl) break;  /* plain: level-triggered epoll says when there is more */
            }
        }
    }
    double seconds = now_seconds() - start;
    for (int i = 0; i < count; i++) close(clients[i].fd);
    long missing = expected - tally.deliveries;
    long lost = tally.lost + (missing > tally.lost ? missing - tally.lost : 0);
    printf("{\"deliveries\": %ld, \"expected\": %ld, \"lost\": %ld, \"duplicated\": %ld, \"reordered\": %ld, "
           "\"seconds\": %.6f, \"generator_cpu_seconds\": %.6f, \"latencies_ms\": [",
           tally.deliveries, expected, lost, tally.duplicated, tally.reordered, seconds, cpu_seconds() - cpu_before);
    for (size_t i = 0; i < tally.latency_count; i++) printf(i ? ",%.4f" : "%.4f", tally.latencies[i]);
    printf("]}\n");
    return 0;
}

static int udp(int port, double seconds, int in_flight, int size) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in address = loopback(port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("udp connect");
    struct timeval wait = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char payload[65536], reply[65536];
    memset(payload, 'e', size);
    for (int i = 0; i < in_flight; i++) send(fd, payload, size, 0);
    long echoes = 0;
    double end = now_seconds() + seconds;
    while (now_seconds() < end) {
        if (recv(fd, reply, sizeof reply, 0) < 0) {
            for (int i = 0; i < in_flight; i++) send(fd, payload, size, 0);  /* lost: refill the window */
            continue;
        }
        echoes++;
        send(fd, payload, size, 0);
    }
    printf("%.1f\n", echoes / seconds);
    return 0;
}

int main(int argc, char **argv) {
    raise_fd_limit();
    const char *wait_greeting = getenv("LOADGEN_GREETING_FIRST");
    greeting_first = wait_greeting && strcmp(wait_greeting, "1") == 0;
    const char *over_tls = getenv("LOADGEN_TLS");
    if (over_tls && strcmp(over_tls, "1") == 0) {
        tls = SSL_CTX_new(TLS_client_method());
        if (!tls) die("SSL_CTX_new");
        SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    if (argc == 14 && strcmp(argv[1], "chat") == 0 && (strcmp(argv[13], "web") == 0 || strcmp(argv[13], "irc") == 0)) {
        web = strcmp(argv[13], "web") == 0;
        irc = !web;
        argc = 13;
    }
    if ((argc == 11 || argc == 13) && strcmp(argv[1], "chat") == 0)
        return chat(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atol(argv[5]), atoi(argv[6]), atof(argv[7]),
                    atof(argv[8]), atoi(argv[9]), atoi(argv[10]), argc == 13 ? atoi(argv[11]) : 0,
                    argc == 13 ? atoi(argv[12]) : 0);
    if (argc == 5 && strcmp(argv[1], "idle") == 0 && (strcmp(argv[4], "irc") == 0 || strcmp(argv[4], "web") == 0)) {
        web = strcmp(argv[4], "web") == 0;
        irc = !web;
        argc = 4;
    }
    if (argc == 4 && strcmp(argv[1], "idle") == 0) return idle(atoi(argv[2]), atoi(argv[3]));
    if (argc == 6 && strcmp(argv[1], "udp") == 0) return udp(atoi(argv[2]), atof(argv[3]), atoi(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: see the comment at the top of loadgen.c\n");
    return 2;
}

/* Baseline, not part of chatd: the minimal C UDP echo server.
 *     cc -O2 -o udp_echo udp_echo.c && ./udp_echo PORT
 * Listens on 127.0.0.1:PORT and sends every datagram back to its sender. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    printf("listening on %s\n", argv[1]);
    fflush(stdout);
    char buffer[65536];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t length = sizeof peer;
        ssize_t got = recvfrom(fd, buffer, sizeof buffer, 0, (struct sockaddr *)&peer, &length);
        if (got >= 0) sendto(fd, buffer, (size_t)got, 0, (struct sockaddr *)&peer, length);
    }
}

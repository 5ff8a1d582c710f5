/*
 * conn.c - reading, writing and watching one socket.
 */
#include "conn.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_READ_CHUNK 16384

void conn_init(struct conn *c, int fd, void (*cb)(struct ev_loop *, ev_io *, int),
               void *data) {
    c->fd = fd;
    c->events = 0;
    ev_io_init(&c->io, cb, fd, EV_READ);
    c->io.data = data;
}

enum conn_io conn_read(struct conn *c) {
    if (c->in.len >= CONN_IN_MAX) {
        return CONN_IO_AGAIN;
    }
    size_t room = CONN_IN_MAX - c->in.len;
    if (room > CONN_READ_CHUNK) {
        room = CONN_READ_CHUNK;
    }
    char *dst = buffer_reserve(&c->in, room);
    if (dst == NULL) {
        errno = ENOMEM;
        return CONN_IO_ERROR;
    }
    ssize_t n;
    do {
        n = recv(c->fd, dst, room, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        buffer_commit(&c->in, (size_t)n);
        c->bytes_in += (unsigned long long)n;
        return CONN_IO_OK;
    }
    if (c->in.len == 0) {
        buffer_free(&c->in); /* reserve allocated; give it back */
    }
    if (n == 0) {
        return CONN_IO_EOF;
    }
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? CONN_IO_AGAIN : CONN_IO_ERROR;
}

enum conn_io conn_flush(struct conn *c) {
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, buffer_head(&c->out), c->out.len, MSG_NOSIGNAL);
        if (n > 0) {
            c->bytes_out += (unsigned long long)n;
            buffer_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return CONN_IO_AGAIN;
        }
        return CONN_IO_ERROR;
    }
    return CONN_IO_OK;
}

void conn_set_events(struct ev_loop *loop, struct conn *c, int events) {
    if (c->fd < 0 || events == c->events) {
        return;
    }
    if (c->events != 0) {
        ev_io_stop(loop, &c->io);
    }
    c->events = events;
    if (events != 0) {
        ev_io_set(&c->io, c->fd, events);
        ev_io_start(loop, &c->io);
    }
}

void conn_close(struct ev_loop *loop, struct conn *c) {
    if (c->fd >= 0) {
        conn_set_events(loop, c, 0);
        close(c->fd);
        c->fd = -1;
    }
    buffer_free(&c->in);
    buffer_free(&c->out);
}

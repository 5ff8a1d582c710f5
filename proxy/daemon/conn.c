/*
 * conn.c - reading, writing and watching one socket, in plaintext or
 * through BoringSSL.
 *
 * With TLS, a read may need the socket writable (and a write readable);
 * those needs are recorded in tls_read_wants/tls_write_wants and folded
 * into the event mask by the session, so there is still one watcher.
 */
#include "daemon/conn.h"

#include <errno.h>
#include <openssl/err.h>
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

/* tls_result maps a failed SSL call to what the caller must do, recording
 * which socket event TLS waits for in |*wants|. */
static enum conn_io tls_result(struct conn *c, int ret, int *wants) {
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *wants = EV_READ;
        return CONN_IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *wants = EV_WRITE;
        return CONN_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return CONN_IO_EOF;
    case SSL_ERROR_SYSCALL:
        /* ret 0 with an empty queue: the peer closed without close_notify. */
        if (ERR_peek_error() == 0 && (ret == 0 || errno == 0)) {
            return CONN_IO_EOF;
        }
        return CONN_IO_ERROR;
    default:
        return CONN_IO_ERROR;
    }
}

static enum conn_io read_some(struct conn *c, char *dst, size_t room, size_t *out_n) {
    if (c->ssl != NULL) {
        ERR_clear_error();
        c->tls_read_wants = 0;
        int n = SSL_read(c->ssl, dst, (int)room);
        if (n > 0) {
            *out_n = (size_t)n;
            return CONN_IO_OK;
        }
        return tls_result(c, n, &c->tls_read_wants);
    }
    ssize_t n;
    do {
        n = recv(c->fd, dst, room, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        *out_n = (size_t)n;
        return CONN_IO_OK;
    }
    if (n == 0) {
        return CONN_IO_EOF;
    }
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? CONN_IO_AGAIN : CONN_IO_ERROR;
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
    size_t n = 0;
    enum conn_io r = read_some(c, dst, room, &n);
    if (r == CONN_IO_OK) {
        buffer_commit(&c->in, n);
        c->bytes_in += n;
    } else if (c->in.len == 0) {
        buffer_free(&c->in); /* reserve allocated; give it back */
    }
    return r;
}

int conn_tls_pending(const struct conn *c) {
    return c->ssl != NULL && SSL_pending(c->ssl) > 0;
}

static enum conn_io write_some(struct conn *c, size_t *out_n) {
    size_t len = c->out.len;
    if (c->ssl != NULL) {
        ERR_clear_error();
        c->tls_write_wants = 0;
        int n = SSL_write(c->ssl, buffer_head(&c->out), len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0) {
            *out_n = (size_t)n;
            return CONN_IO_OK;
        }
        return tls_result(c, n, &c->tls_write_wants);
    }
    ssize_t n = send(c->fd, buffer_head(&c->out), len, MSG_NOSIGNAL);
    if (n > 0) {
        *out_n = (size_t)n;
        return CONN_IO_OK;
    }
    if (n < 0 && errno == EINTR) {
        *out_n = 0;
        return CONN_IO_OK;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return CONN_IO_AGAIN;
    }
    return CONN_IO_ERROR;
}

enum conn_io conn_flush(struct conn *c) {
    while (c->out.len > 0) {
        size_t n = 0;
        enum conn_io r = write_some(c, &n);
        if (r != CONN_IO_OK) {
            return r == CONN_IO_EOF ? CONN_IO_ERROR : r;
        }
        c->bytes_out += n;
        buffer_consume(&c->out, n);
    }
    return CONN_IO_OK;
}

enum conn_io conn_handshake(struct conn *c) {
    ERR_clear_error();
    c->tls_read_wants = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        return CONN_IO_OK;
    }
    return tls_result(c, r, &c->tls_read_wants);
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
    if (c->ssl != NULL) {
        /* A close_notify when the socket takes it; never waits. */
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        conn_set_events(loop, c, 0);
        close(c->fd);
        c->fd = -1;
    }
    buffer_free(&c->in);
    buffer_free(&c->out);
}

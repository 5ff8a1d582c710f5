/*
 * conn.h - one side of a session (client or backend): its socket, its
 * libev watcher and its input and output buffers.
 *
 * One ev_io per fd; the event mask is derived in one place
 * (conn_set_events) from what the session wants, the redis way, so the
 * TLS layer can later add "read wants write" without new watchers.
 */
#ifndef SMTP_TLS_PROXY_CONN_H
#define SMTP_TLS_PROXY_CONN_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/buffer.h"

/* Reads stop while a side holds this much unprocessed input. */
#define CONN_IN_MAX (64 * 1024)
/* A side stops being read while its peer has this much unsent output
 * (backpressure in both directions). */
#define CONN_OUT_HIGH (256 * 1024)

enum conn_io {
    CONN_IO_OK = 0,     /* progress */
    CONN_IO_AGAIN = 1,  /* would block */
    CONN_IO_EOF = 2,    /* orderly close by the peer */
    CONN_IO_ERROR = 3,  /* reset or other error; errno says which */
};

struct conn {
    int fd;
    ev_io io;
    int events; /* mask the watcher was started with (0: stopped) */
    struct buffer in;
    struct buffer out;
    unsigned long long bytes_in, bytes_out;
    SSL *ssl;   /* NULL while plaintext */
    /* What TLS needs before the last read/write/handshake can go on:
     * EV_READ, EV_WRITE or 0. A read may need the socket writable and a
     * write may need it readable. */
    int tls_read_wants;
    int tls_write_wants;
};

/* conn_init sets up |c| for |fd| with |cb| as the watcher's callback;
 * the watcher's data pointer is |data|. Nothing is watched yet. */
void conn_init(struct conn *c, int fd, void (*cb)(struct ev_loop *, ev_io *, int),
               void *data);

/* conn_read reads what is available, up to CONN_IN_MAX buffered. */
enum conn_io conn_read(struct conn *c);

/* conn_flush writes as much of |out| as the socket takes. Returns
 * CONN_IO_OK when |out| is empty afterwards. */
enum conn_io conn_flush(struct conn *c);

/* conn_handshake advances a server TLS handshake on |c->ssl|. Returns
 * CONN_IO_OK when it is complete, CONN_IO_AGAIN while it waits for the
 * socket (tls_read_wants says which way), CONN_IO_EOF or CONN_IO_ERROR
 * when it failed. */
enum conn_io conn_handshake(struct conn *c);

/* conn_tls_pending says whether TLS holds decrypted bytes that no socket
 * event will announce (level-triggered watchers see only the fd). */
int conn_tls_pending(const struct conn *c);

/* conn_set_events (re)starts the watcher with |events| (EV_READ,
 * EV_WRITE or both; 0 stops it), touching libev only on a change. */
void conn_set_events(struct ev_loop *loop, struct conn *c, int events);

/* conn_close stops the watcher, frees the TLS state, closes the fd and
 * frees the buffers. */
void conn_close(struct ev_loop *loop, struct conn *c);

#endif

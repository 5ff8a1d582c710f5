/*
 * buffer.h - byte buffers for one direction of a connection.
 *
 * A buffer owns memory only while it holds bytes: it is allocated on the
 * first write and released when the last byte is consumed (the HAProxy
 * discipline), so ten thousand idle sessions cost no buffer memory.
 */
#ifndef SMTP_TLS_PROXY_BUFFER_H
#define SMTP_TLS_PROXY_BUFFER_H

#include <stddef.h>

struct buffer {
    char *data;   /* NULL while empty */
    size_t start; /* offset of the first unconsumed byte */
    size_t len;   /* unconsumed bytes */
    size_t cap;   /* allocated size */
};

/* buffer_append copies |n| bytes to the end of |b|. Returns 1, or 0 when
 * memory cannot be had (|b| is then unchanged). */
int buffer_append(struct buffer *b, const void *src, size_t n);

/* buffer_append_str appends a NUL-terminated string. Returns 1 or 0. */
int buffer_append_str(struct buffer *b, const char *s);

/* buffer_reserve makes room for at least |n| more bytes at the end and
 * returns where they go, or NULL when memory cannot be had. Bytes written
 * there count only after buffer_commit. */
char *buffer_reserve(struct buffer *b, size_t n);

/* buffer_commit counts |n| bytes written after buffer_reserve. */
void buffer_commit(struct buffer *b, size_t n);

/* buffer_head returns the first unconsumed byte (valid while len > 0). */
static inline const char *buffer_head(const struct buffer *b) {
    return b->data + b->start;
}

/* buffer_consume drops |n| bytes from the front (n <= len); frees the
 * memory when the buffer becomes empty. */
void buffer_consume(struct buffer *b, size_t n);

/* buffer_free releases everything; a freed buffer is a valid empty one. */
void buffer_free(struct buffer *b);

#endif

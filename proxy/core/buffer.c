/*
 * buffer.c - growable byte buffers that hold memory only while non-empty.
 */
#include "core/buffer.h"

#include <stdlib.h>
#include <string.h>

#define BUFFER_MIN_CAP 4096

char *buffer_reserve(struct buffer *b, size_t n) {
    if (b->cap - b->start - b->len >= n && b->data != NULL) {
        return b->data + b->start + b->len;
    }
    /* Slide the live bytes to the front before growing: most of the time
     * that alone makes room. */
    if (b->start > 0 && b->len > 0) {
        memmove(b->data, b->data + b->start, b->len);
    }
    b->start = 0;
    if (b->cap - b->len >= n && b->data != NULL) {
        return b->data + b->len;
    }
    size_t want = b->cap ? b->cap : BUFFER_MIN_CAP;
    while (want - b->len < n) {
        if (want > ((size_t)-1) / 2) {
            return NULL;
        }
        want *= 2;
    }
    char *p = realloc(b->data, want);
    if (p == NULL) {
        return NULL;
    }
    b->data = p;
    b->cap = want;
    return b->data + b->len;
}

void buffer_commit(struct buffer *b, size_t n) {
    b->len += n;
}

int buffer_append(struct buffer *b, const void *src, size_t n) {
    if (n == 0) {
        return 1;
    }
    char *dst = buffer_reserve(b, n);
    if (dst == NULL) {
        return 0;
    }
    memcpy(dst, src, n);
    buffer_commit(b, n);
    return 1;
}

int buffer_append_str(struct buffer *b, const char *s) {
    return buffer_append(b, s, strlen(s));
}

void buffer_consume(struct buffer *b, size_t n) {
    if (n >= b->len) {
        buffer_free(b);
        return;
    }
    b->start += n;
    b->len -= n;
}

void buffer_free(struct buffer *b) {
    free(b->data);
    b->data = NULL;
    b->start = b->len = b->cap = 0;
}

/*
 * eod.c - the end-of-data scanner (see eod.h).
 */
#include "eod.h"

#include <string.h>

/* step returns the state after octet |c| in state |s|; EOD_BOL after
 * EOD_DOT_CR means the end was found (the caller checks first). */
static enum eod_state step(enum eod_state s, char c) {
    switch (s) {
    case EOD_BOL:
        return c == '.' ? EOD_DOT : c == '\r' ? EOD_CR : EOD_TEXT;
    case EOD_DOT:
        return c == '\r' ? EOD_DOT_CR : EOD_TEXT;
    case EOD_CR:
    case EOD_DOT_CR:
        return c == '\n' ? EOD_BOL : c == '\r' ? EOD_CR : EOD_TEXT;
    case EOD_TEXT:
    default:
        return c == '\r' ? EOD_CR : EOD_TEXT;
    }
}

int eod_scan(enum eod_state *state, const char *p, size_t n, size_t *out_consumed) {
    enum eod_state s = *state;
    size_t i = 0;
    while (i < n) {
        if (s == EOD_TEXT) {
            /* Most octets are inside a line: skip to the next CR at once. */
            const char *cr = memchr(p + i, '\r', n - i);
            if (cr == NULL) {
                i = n;
                break;
            }
            i = (size_t)(cr - p);
        }
        char c = p[i++];
        if (s == EOD_DOT_CR && c == '\n') {
            *state = EOD_BOL;
            *out_consumed = i;
            return 1;
        }
        s = step(s, c);
    }
    *state = s;
    *out_consumed = n;
    return 0;
}

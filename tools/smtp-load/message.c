/*
 * message.c - the fixed-size test message (see message.h).
 */
#include "message.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINE_WIRE (MSG_LINE_CHARS + 2)

/* Letters and digits only: never ".", never white space. */
static const char CHARS[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
#define NCHARS (sizeof(CHARS) - 1)

void msg_date(int64_t unix_time, char *out) {
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)unix_time;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    /* gmtime's fields are in range, so this is always 31 octets; the
     * larger scratch only keeps the compiler's truncation check quiet. */
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, 31);
    out[31] = '\0';
}

/* fill_line writes |chars| characters of line |k| and CRLF at |out|. */
static void fill_line(char *out, size_t chars, size_t k) {
    for (size_t j = 0; j < chars; j++) {
        out[j] = CHARS[(j + k) % NCHARS];
    }
    out[chars] = '\r';
    out[chars + 1] = '\n';
}

void msg_body_fill(char *out, size_t n) {
    size_t full = n / LINE_WIRE, rest = n % LINE_WIRE;
    size_t k = 0;
    /* A remainder of 1 cannot be a line (CRLF is 2): the last full line
     * takes that octet instead. */
    if (rest == 1 && full > 0) {
        full--;
        rest += LINE_WIRE;
    }
    for (; k < full; k++) {
        fill_line(out + k * LINE_WIRE, MSG_LINE_CHARS, k);
    }
    if (rest >= 2) {
        fill_line(out + k * LINE_WIRE, rest - 2, k);
    }
}

/* format_header writes the header block with |pad| extra Subject
 * characters to |out| (MSG_HEADER_MAX octets); returns its length, or 0
 * when it does not fit. */
static size_t format_header(const struct msg_layout *m, size_t pad, uint32_t stream,
                            uint64_t seq, int64_t unix_time, char *out) {
    char date[32];
    msg_date(unix_time, date);
    char padding[4] = "xxx";
    padding[pad < 3 ? pad : 3] = '\0';
    int n = snprintf(out, MSG_HEADER_MAX,
                     "From: <%s>\r\nTo: <%s>\r\nSubject: smtp-load test message%s\r\n"
                     "Message-ID: <%08" PRIx32 ".%016" PRIx64 "@%s>\r\nDate: %s\r\n\r\n",
                     m->from, m->to, padding, stream, seq, m->domain, date);
    if (n < 0 || (size_t)n >= MSG_HEADER_MAX) {
        return 0;
    }
    return (size_t)n;
}

size_t msg_header(const struct msg_layout *m, uint32_t stream, uint64_t seq,
                  int64_t unix_time, char *out) {
    return format_header(m, m->subject_pad, stream, seq, unix_time, out);
}

/* copy_name copies |src| into |dst| (MSG_NAME_MAX). Returns 1, or 0 when
 * it is too long or holds a byte that would break the header. */
static int copy_name(char *dst, const char *src) {
    size_t n = strlen(src);
    if (n >= MSG_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)src[i] < 0x21 || (unsigned char)src[i] > 0x7e) {
            return 0;
        }
    }
    memcpy(dst, src, n + 1);
    return 1;
}

int msg_layout_init(struct msg_layout *m, size_t size, const char *from, const char *to,
                    const char *domain, char *why, size_t whylen) {
    char sample[MSG_HEADER_MAX];
    memset(m, 0, sizeof(*m));
    if (!copy_name(m->from, from) || !copy_name(m->to, to) || !copy_name(m->domain, domain)) {
        snprintf(why, whylen, "an address or name is empty of printable ASCII or too long");
        return 0;
    }
    m->header_len = format_header(m, 0, 0, 0, 0, sample);
    if (m->header_len == 0 || size < m->header_len) {
        snprintf(why, whylen, "--size %zu is below the header block's %zu octets", size,
                 m->header_len);
        return 0;
    }
    m->size = size;
    m->body_len = size - m->header_len;
    if (m->body_len == 1) {
        /* One octet cannot be a body line: the Subject takes it. */
        m->subject_pad = 1;
        m->header_len++;
        m->body_len = 0;
    }
    m->wire_len = m->body_len + 3;
    m->wire = malloc(m->wire_len);
    if (m->wire == NULL) {
        snprintf(why, whylen, "no memory for a %zu-octet message", size);
        return 0;
    }
    msg_body_fill(m->wire, m->body_len);
    memcpy(m->wire + m->body_len, ".\r\n", 3);
    return 1;
}

void msg_layout_free(struct msg_layout *m) {
    free(m->wire);
    m->wire = NULL;
}

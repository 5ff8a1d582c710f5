/*
 * fuzz_report.c - libFuzzer target for what smtp-tls-proxy report reads
 * from files it did not write: Received fields (received.h), log lines
 * in text or JSON (logline.h, log.h's cursor and JSON writer) and the
 * mbox reader (mailbox.h). Checked, besides memory safety under ASan:
 *  - a Received field gives a known classification; a TLS version is
 *    one of the normalised names; unclassified says why; plaintext
 *    carries no version;
 *  - the JSON form of any text line reads back as the same fields;
 *  - the mbox reader never hands over more fields than it keeps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "report/logline.h"
#include "report/mailbox.h"
#include "report/received.h"

static void check_received(const char *s, size_t n) {
    struct received_info r;
    received_parse(s, n, &r);
    static const char *const names[] = {"", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3",
                                        "TLSv1.4", "TLSv1.5", "TLSv1.6", "TLSv1.7",
                                        "TLSv1.8", "TLSv1.9", NULL};
    int known = 0;
    for (int i = 0; names[i] != NULL; i++) {
        known |= strcmp(r.version, names[i]) == 0;
    }
    known |= strncmp(r.version, "SSLv", 4) == 0 && strlen(r.version) == 5;
    if (!known || (r.tls == RECEIVED_UNCLASSIFIED && r.why == NULL) ||
        (r.tls != RECEIVED_TLS && r.version[0] != '\0') ||
        (r.tls != RECEIVED_UNCLASSIFIED && r.tls != RECEIVED_PLAIN && r.tls != RECEIVED_TLS)) {
        abort();
    }
    if (strlen(r.helo) >= sizeof(r.helo) || strlen(r.ip) >= sizeof(r.ip)) {
        abort();
    }
}

static void check_log(const char *s, size_t n) {
    static struct logline text, json;
    static char js[6 * 4096 + 16];
    if (n > 4096) {
        n = 4096;
    }
    /* log_msg never writes a newline inside a line. */
    char line[4096];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\n' && s[i] != '\r') {
            line[m++] = s[i];
        }
    }
    size_t j = log_text_to_json(js, sizeof(js), line, m);
    if (j == 0) {
        abort(); /* 6n + 16 always suffices */
    }
    /* The text fields as the writer read them (logline_parse would take
     * a line starting with '{' for JSON). */
    struct log_cursor c;
    struct log_field f;
    text.nfields = 0;
    log_cursor_init(&c, line, m);
    while (log_cursor_next(&c, &f) && text.nfields < LOGLINE_FIELDS_MAX) {
        text.f[text.nfields++] = f;
    }
    if (!logline_parse(&json, js, j)) {
        abort(); /* the writer's output is JSON */
    }
    {
        size_t k = text.nfields < json.nfields ? text.nfields : json.nfields;
        if (text.nfields < LOGLINE_FIELDS_MAX && text.nfields != json.nfields) {
            abort();
        }
        for (size_t i = 0; i < k; i++) {
            if (text.f[i].key_len != json.f[i].key_len ||
                memcmp(text.f[i].key, json.f[i].key, text.f[i].key_len) != 0 ||
                text.f[i].value_len != json.f[i].value_len ||
                memcmp(text.f[i].value, json.f[i].value, text.f[i].value_len) != 0) {
                abort();
            }
        }
    }
    /* Hostile JSON straight in. */
    logline_parse(&json, s, n);
}

static void on_message(void *ctx, const struct mailbox_message *msg) {
    (void)ctx;
    if (msg->nreceived > MAILBOX_RECEIVED_MAX) {
        abort();
    }
    for (size_t i = 0; i < msg->nreceived; i++) {
        if (strlen(msg->received[i]) > MAILBOX_FIELD_MAX) {
            abort();
        }
        check_received(msg->received[i], strlen(msg->received[i]));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    check_received(s, size);
    check_log(s, size);
    struct mailbox_reader r;
    mailbox_init(&r, size > 0 && (data[0] & 1), on_message, NULL);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == '\n') {
            mailbox_line(&r, s + start, i - start);
            start = i + 1;
        }
    }
    mailbox_finish(&r);
    return 0;
}

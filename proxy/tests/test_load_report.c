/*
 * test_load_report.c - smtp-load's report.h: merged counts, and the JSON
 * object make bench reads, with every key it names.
 */
#include <stdlib.h>

#include "smtp-load/report.h"
#include "unit.h"

UNIT_TEST(load_report_merge_adds_counts_and_latencies) {
    struct load_stats *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    stats_init(a);
    stats_init(b);
    a->messages = 3;
    b->messages = 4;
    a->errors[ERR_TIMEOUT] = 1;
    b->errors[ERR_CLOSED] = 2;
    hist_record(&b->lat[LAT_DATA], 1000000);
    stats_merge(a, b);
    CHECK_INT(a->messages, 7);
    CHECK_INT(stats_errors(a), 3);
    CHECK_INT(a->lat[LAT_DATA].count, 1);
    free(a);
    free(b);
}

UNIT_TEST(load_report_json_has_every_key_of_the_interface) {
    struct load_opts o;
    memset(&o, 0, sizeof(o));
    o.mode = MODE_TLS;
    o.tls_version = 13;
    o.connections = 10;
    o.threads = 1;
    struct load_stats *s = malloc(sizeof(*s));
    stats_init(s);
    s->messages = 1234;
    s->message_bytes = 5054464;
    s->sessions = 1234;
    s->handshakes = 1234;
    hist_record(&s->lat[LAT_CONNECT], 100000);
    struct load_report r = {.opts = &o, .stats = s, .elapsed_s = 2.0, .cpu_user_s = 1.5};
    struct buffer out = {0};
    CHECK(report_json(&r, &out));
    CHECK(buffer_append(&out, "", 1));
    const char *j = buffer_head(&out);
    static const char *const keys[] = {
        "{\"mode\":\"tls\",", "\"tls_version\":\"1.3\"", "\"resume\":false",
        "\"connections\":10", "\"threads\":1", "\"elapsed_s\":2.000", "\"sessions\":1234",
        "\"messages\":1234", "\"message_bytes\":5054464", "\"handshakes\":1234",
        "\"resumed\":0", "\"msgs_per_s\":617.0", "\"handshakes_per_s\":617.0",
        "\"sessions_per_s\":617.0", "\"mb_per_s\":2.527",
        "\"latency_ms\":{\"connect\":{\"p50\":0.100,\"p99\":0.100,\"n\":1},",
        "\"greeting\":{", "\"handshake\":{", "\"data\":{\"p50\":0.000,\"p99\":0.000,\"n\":0}",
        "\"errors\":{\"connect\":0,\"greeting\":0,\"tls\":0,\"ehlo\":0,\"starttls\":0,"
        "\"mail\":0,\"rcpt\":0,\"data\":0,\"dot\":0,\"quit\":0,\"timeout\":0,\"closed\":0}",
        "\"cpu_s\":{\"user\":1.500,\"system\":0.000}}\n"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strstr(j, keys[i]) == NULL) {
            unit_fail(__FILE__, __LINE__, "missing %s in %s", keys[i], j);
        }
    }
    buffer_free(&out);
    free(s);
}

UNIT_TEST(load_report_text_names_the_errors_that_happened) {
    struct load_opts o;
    memset(&o, 0, sizeof(o));
    o.connections = 1;
    o.threads = 1;
    struct load_stats *s = malloc(sizeof(*s));
    stats_init(s);
    s->errors[ERR_RCPT] = 2;
    struct load_report r = {.opts = &o, .stats = s, .elapsed_s = 0};
    struct buffer out = {0};
    CHECK(report_text(&r, &out));
    CHECK(buffer_append(&out, "", 1));
    CHECK(strstr(buffer_head(&out), "errors       2  rcpt 2\n") != NULL);
    buffer_free(&out);
    free(s);
}

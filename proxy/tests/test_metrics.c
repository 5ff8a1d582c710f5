/*
 * test_metrics.c - obs/metrics.h: shards sum, labels never come from
 * clients, failure reasons map to their label.
 */
#include <stdlib.h>
#include <string.h>

#include "obs/metrics.h"
#include "unit.h"

static char *render(struct metrics *m) {
    struct buffer out = {0};
    CHECK_INT(metrics_render(m, &out), 1);
    char *s = malloc(out.len + 1);
    memcpy(s, buffer_head(&out), out.len);
    s[out.len] = '\0';
    buffer_free(&out);
    return s;
}

UNIT_TEST(metrics_shards_are_summed_per_label_set) {
    const char *names[] = {"smtp", "submission"};
    struct metrics *m = metrics_new(2, names, 3);
    CHECK(m != NULL);
    metrics_connection(metrics_shard(m, 0), 0, MT_TLS13, SCOPE_GLOBAL);
    metrics_connection(metrics_shard(m, 2), 0, MT_TLS13, SCOPE_GLOBAL);
    metrics_connection(metrics_shard(m, 1), 1, MT_NONE, SCOPE_PRIVATE);
    metrics_message(metrics_shard(m, 1), 0, MT_TLS12, SCOPE_LOOPBACK, MR_ACCEPTED, 1000);
    metrics_message(metrics_shard(m, 2), 0, MT_TLS12, SCOPE_LOOPBACK, MR_ACCEPTED, 24);
    metrics_active(metrics_shard(m, 0), 1, 1);
    metrics_active(metrics_shard(m, 1), 1, 1);
    metrics_active(metrics_shard(m, 2), 1, -1);
    metrics_handshake(metrics_shard(m, 0), 1, MT_TLS13, "X25519");
    metrics_handshake(metrics_shard(m, 0), 1, MT_TLS13, "evil\"group");
    metrics_country(metrics_shard(m, 0), "DE", MT_TLS13);
    metrics_country(metrics_shard(m, 0), "d\"", MT_TLS13); /* not a code: ignored */
    char *s = render(m);
    CHECK(strstr(s, "smtp_tls_proxy_connections_total{listener=\"smtp\",tls=\"TLSv1.3\","
                    "scope=\"global\"} 2\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_connections_total{listener=\"submission\",tls=\"none\","
                    "scope=\"private\"} 1\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_messages_total{listener=\"smtp\",tls=\"TLSv1.2\","
                    "scope=\"loopback\",result=\"accepted\"} 2\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_message_bytes_total{listener=\"smtp\",tls=\"TLSv1.2\","
                    "scope=\"loopback\",result=\"accepted\"} 1024\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_sessions_active{listener=\"submission\"} 1\n") != NULL);
    CHECK(strstr(s, "version=\"TLSv1.3\",group=\"X25519\"} 1\n") != NULL);
    CHECK(strstr(s, "version=\"TLSv1.3\",group=\"other\"} 1\n") != NULL);
    CHECK(strstr(s, "evil") == NULL);
    CHECK(strstr(s, "{country=\"DE\",tls=\"TLSv1.3\"} 1\n") != NULL);
    CHECK(strstr(s, "country=\"D") == NULL || strstr(s, "country=\"DE\"") != NULL);
    free(s);
    metrics_free(m);
}

UNIT_TEST(metrics_certificate_and_build_labels_are_escaped) {
    const char *names[] = {"smtp"};
    struct metrics *m = metrics_new(1, names, 1);
    const char *certs[] = {"mx\"x"}, *types[] = {"rsa"};
    double after[] = {1859237898};
    metrics_set_certificates(m, 1, certs, types, after);
    metrics_set_build(m, "0.1.0", "BoringSSL");
    metrics_reload(m, 0, 0);
    metrics_reload(m, 1, 1700000000);
    char *s = render(m);
    CHECK(strstr(s, "{certificate=\"mx\\\"x\",key_type=\"rsa\"} 1859237898\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_reloads_total{result=\"failed\"} 1\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_last_reload_success_timestamp_seconds 1700000000.000\n") !=
          NULL);
    CHECK(strstr(s, "smtp_tls_proxy_build_info{version=\"0.1.0\",tls_library=\"BoringSSL\"} 1\n") !=
          NULL);
    free(s);
    metrics_free(m);
}

UNIT_TEST(metrics_failure_reasons_and_versions_map_to_labels) {
    CHECK_INT(metrics_fail_of("handshake_timeout"), MF_TIMEOUT);
    CHECK_INT(metrics_fail_of("SSL_routines:_NO_SHARED_CIPHER"), MF_NO_SHARED_CIPHER);
    CHECK_INT(metrics_fail_of("SSL_routines:_UNSUPPORTED_PROTOCOL"), MF_PROTOCOL_VERSION);
    CHECK_INT(metrics_fail_of("SSL_routines:_TLSV1_ALERT_PROTOCOL_VERSION"), MF_PROTOCOL_VERSION);
    CHECK_INT(metrics_fail_of("SSL_routines:_SSLV3_ALERT_BAD_CERTIFICATE"), MF_ALERT_RECEIVED);
    CHECK_INT(metrics_fail_of("client_closed_connection"), MF_CLOSED);
    CHECK_INT(metrics_fail_of("client_closed_before_client_hello"), MF_NO_CLIENT_HELLO);
    CHECK_INT(metrics_fail_of("handshake_timeout_no_client_hello"), MF_NO_CLIENT_HELLO);
    CHECK_INT(metrics_fail_of("SSL_routines:_WRONG_VERSION_NUMBER"), MF_OTHER);
    CHECK_INT(metrics_tls_of("TLSv1.3"), MT_TLS13);
    CHECK_INT(metrics_tls_of("TLSv1"), MT_TLS10);
    CHECK_INT(metrics_tls_of(NULL), MT_NONE);
    CHECK_INT(metrics_tls_of("SSLv3"), MT_NONE);
}

static size_t seven(void) {
    return 7;
}

static size_t two(void) {
    return 2;
}

UNIT_TEST(metrics_starttls_memory_size_and_events_are_rendered) {
    const char *names[] = {"smtp"};
    struct metrics *m = metrics_new(1, names, 1);
    char *s = render(m);
    CHECK(strstr(s, "starttls_memory_entries") == NULL); /* no memory given: no family */
    free(s);
    metrics_set_memory(m, seven, two, 100);
    metrics_starttls(metrics_shard(m, 0), 0, MS_WITHHELD);
    metrics_starttls(metrics_shard(m, 0), 0, MS_FAILED);
    metrics_starttls(metrics_shard(m, 0), 0, MS_FAILED);
    metrics_handshake_failure(metrics_shard(m, 0), 0, MF_NO_CLIENT_HELLO);
    s = render(m);
    CHECK(strstr(s, "smtp_tls_proxy_starttls_memory_entries 7\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_starttls_memory_max_entries 100\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_starttls_memory_evictions_total 2\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_starttls_total{listener=\"smtp\",event=\"withheld\"} 1\n") !=
          NULL);
    CHECK(strstr(s, "smtp_tls_proxy_starttls_total{listener=\"smtp\",event=\"failed\"} 2\n") !=
          NULL);
    CHECK(strstr(s, "reason=\"no_client_hello\"} 1\n") != NULL);
    free(s);
    metrics_free(m);
}

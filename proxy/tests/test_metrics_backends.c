/*
 * test_metrics_backends.c - obs/metrics.h: the per-backend families come
 * from the backend pool, labelled by the configured targets' texts.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend_pool.h"
#include "obs/metrics.h"
#include "unit.h"

static char *render_text(struct metrics *m) {
    struct buffer out = {0};
    CHECK_INT(metrics_render(m, &out), 1);
    char *s = malloc(out.len + 1);
    memcpy(s, buffer_head(&out), out.len);
    s[out.len] = '\0';
    buffer_free(&out);
    return s;
}

UNIT_TEST(metrics_backends_up_connects_and_failures_per_target) {
    const char *names[] = {"smtp"};
    struct metrics *m = metrics_new(1, names, 1);
    char *s = render_text(m);
    CHECK(strstr(s, "backend_up") == NULL); /* no pool: no families */
    free(s);
    struct backend_target t[2] = {{.text = "127.0.0.1:2525"}, {.text = "/run/a\"b.sock"}};
    struct backend_pool *pool = backend_pool_new();
    CHECK(backend_pool_configure(pool, t, 2));
    backend_pool_count_connect(pool, "127.0.0.1:2525");
    backend_pool_count_connect(pool, "127.0.0.1:2525");
    backend_pool_count_connect(pool, "/run/a\"b.sock");
    backend_pool_count_failure(pool, "/run/a\"b.sock", BACKEND_GREETING_4XX);
    backend_pool_mark_down(pool, "/run/a\"b.sock", (double)time(NULL) + 3600);
    metrics_set_backends(m, pool);
    s = render_text(m);
    CHECK(strstr(s, "# TYPE smtp_tls_proxy_backend_up gauge\n") != NULL);
    CHECK(strstr(s, "# TYPE smtp_tls_proxy_backend_connects_total counter\n") != NULL);
    CHECK(strstr(s, "# TYPE smtp_tls_proxy_backend_failures_total counter\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_backend_up{backend=\"127.0.0.1:2525\"} 1\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_backend_up{backend=\"/run/a\\\"b.sock\"} 0\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_backend_connects_total{backend=\"127.0.0.1:2525\"} 2\n") !=
          NULL);
    CHECK(strstr(s, "smtp_tls_proxy_backend_failures_total{backend=\"/run/a\\\"b.sock\","
                    "reason=\"greeting_4xx\"} 1\n") != NULL);
    CHECK(strstr(s, "smtp_tls_proxy_backend_failures_total{backend=\"127.0.0.1:2525\","
                    "reason=\"refused\"} 0\n") != NULL);
    /* the existing family stays */
    CHECK(strstr(s, "smtp_tls_proxy_backend_errors_total{kind=\"connect\"} 0\n") != NULL);
    free(s);
    metrics_free(m);
    backend_pool_free(pool);
}

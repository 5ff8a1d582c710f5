/*
 * session_summary.c - what a finished session was: its struct
 * session_summary, the event=end log line written from it, and the
 * per-message counters (ARCHITECTURE.md §5, §8).
 */
#include <stdio.h>
#include <string.h>

#include "daemon/session_int.h"

#include "core/log.h"

/* as_org_for_log makes an AS organisation ("Example Networks, Inc.")
 * one safe log token. */
static const char *as_org_for_log(char *out, size_t outlen, const char *org) {
    log_sanitize(out, outlen, org, strlen(org));
    for (size_t i = 0; org[i] != '\0' && i + 1 < outlen; i++) {
        if (org[i] == ' ') {
            out[i] = '_';
        }
    }
    return out;
}

void session_summary_log(const struct session_summary *m) {
    char helo[80], sni[80], org[100], name[DNS_NAME_MAX + 1];
    log_info("session=%s event=end client=%s port=%u name=%s listener=%s local_port=%u scope=%s "
             "country=%s asn=%lu as_org=\"%s\" helo=%s tls=%s cipher=%s group=%s "
             "sni=%s starttls=%s messages=%u accepted=%u forged_removed=%u errors=%u pregreet=%s "
             "sync_violations=%u bytes_in=%llu bytes_out=%llu result=%s duration=%.3f",
             m->id, m->client, m->port,
             m->client_name[0]
                 ? log_sanitize(name, sizeof(name), m->client_name, strlen(m->client_name))
                 : "-",
             m->listener, m->local_port, m->scope,
             m->country[0] ? m->country : "-", m->asn,
             as_org_for_log(org, sizeof(org), m->as_org),
             m->helo[0] ? log_sanitize(helo, sizeof(helo), m->helo, strlen(m->helo)) : "-",
             m->tls_version ? m->tls_version : "none", m->tls_version ? m->cipher : "-",
             m->tls_version && m->group ? m->group : "-",
             m->sni[0] ? log_sanitize(sni, sizeof(sni), m->sni, strlen(m->sni)) : "-",
             m->starttls ? m->starttls : "none", m->messages, m->accepted, m->forged_removed,
             m->errors, m->pregreet ? "yes" : "no", m->sync_violations, m->bytes_in, m->bytes_out,
             m->result, m->duration);
}

/* session_summarize describes |s| as it ends. */
void session_summarize(const struct session *s, struct session_summary *m) {
    int tls = s->tls == CLIENT_TLS_ON;
    *m = (struct session_summary){
        .id = s->id,
        .client = s->client_ip,
        .client_name = s->client_name,
        .port = s->client_port,
        .listener = s->listener->name,
        .listener_index = (size_t)(s->listener - s->cfg->listeners),
        .local_port = s->local_port,
        .scope = addr_scope_name(s->scope),
        .scope_id = s->scope,
        .country = s->geo.country,
        .asn = s->geo.asn,
        .as_org = s->geo.as_org,
        .helo = s->helo,
        .tls_version = tls ? s->tls_version : NULL,
        .cipher = tls ? s->tls_cipher : NULL,
        .group = tls && s->tls_group[0] ? s->tls_group : NULL,
        .sni = s->sni,
        .starttls = s->starttls_note,
        .messages = s->messages_started,
        .accepted = s->messages_accepted,
        .forged_removed = s->forged_removed,
        .errors = s->errors,
        .sync_violations = s->sync_violations,
        .pregreet = s->pregreet,
        .bytes_in = s->client.bytes_in,
        .bytes_out = s->client.bytes_out,
        .result = s->result ? s->result : "unknown",
        .duration = ev_now(s->host->loop) - s->started,
    };
}

size_t session_listener_index(const struct session *s) {
    return (size_t)(s->listener - s->cfg->listeners);
}

void session_count_message(struct session *s, enum metrics_result result) {
    enum metrics_tls tls = s->tls == CLIENT_TLS_ON ? metrics_tls_of(s->tls_version) : MT_NONE;
    metrics_message(s->host->metrics, session_listener_index(s), tls, s->scope, result,
                    s->message_bytes);
    if (s->geo.country[0] != '\0') {
        metrics_country(s->host->metrics, s->geo.country, tls);
    }
    s->message_open = 0;
}

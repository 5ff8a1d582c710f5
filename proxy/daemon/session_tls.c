/*
 * session_tls.c - TLS with the client: starting it (after STARTTLS's 220,
 * or at once on implicit-TLS listeners), driving the handshake, and what
 * a success or a failure means for the session (ARCHITECTURE.md §5.3).
 */
#include <stdio.h>
#include <string.h>

#include "daemon/session_int.h"

#include "core/log.h"
#include "core/cidr.h"
#include "daemon/redis_memory.h"
#include "daemon/snapshot.h"
#include "daemon/starttls_memory.h"
#include "tls/tls.h"

/* ---- the STARTTLS memory shared through Redis ---- */

/* memory_key is the client's key under the configured prefixes: what
 * Redis holds (it cannot look for covering prefixes). */
static int memory_key(const struct session *s, struct cidr *k) {
    return cidr_of_addr(&s->client_addr, s->cfg->memory.ipv4_prefix, s->cfg->memory.ipv6_prefix,
                        k);
}

static void on_redis_answer(void *arg, enum redis_answer a) {
    struct session *s = arg;
    s->redis_lookup = NULL; /* gone with this call */
    s->redis_answer = a;
    if (a == REDIS_REMEMBERED) {
        log_debug("session=%s event=redis_answer remembered=yes", s->id);
    }
    session_run(s); /* an EHLO reply may wait for this */
}

void starttls_memory_begin(struct session *s) {
    s->redis_answer = REDIS_UNKNOWN;
    struct cidr k;
    if (s->host->redis == NULL || !listener_tls_optional(s->listener) ||
        !s->cfg->memory.enabled || !memory_key(s, &k) ||
        cidr_list_contains(&s->cfg->memory.always_offer, &s->client_addr) ||
        cidr_list_contains(&s->cfg->memory.never_offer, &s->client_addr)) {
        return;
    }
    /* Asked now, answered (or given up, redis_timeout) long before the
     * EHLO reply usually: the backend's greeting and the client's EHLO
     * come first. */
    s->redis_lookup = redis_memory_lookup(s->host->redis, &k, on_redis_answer, s);
}

int starttls_memory_waiting(const struct session *s) {
    return s->redis_lookup != NULL && !s->starttls_decided && s->fifo_len > 0 &&
           s->fifo[s->fifo_head].kind == PEND_EHLO && s->tls == CLIENT_TLS_OFF &&
           s->listener->tls == TLS_MODE_STARTTLS;
}

void starttls_memory_session_gone(struct session *s) {
    if (s->redis_lookup != NULL) {
        redis_memory_cancel(s->redis_lookup); /* it never calls back into |s| */
        s->redis_lookup = NULL;
    }
}

/* forget_everywhere forgets the client here and in Redis. */
/* forget_everywhere forgets the client here and, when it was remembered
 * (here, or by the fleet as this session's lookup said), in Redis: not
 * one Redis write for every TLS session of the fleet. */
static int forget_everywhere(struct session *s, char *key, size_t keylen) {
    int forgot = smem_forget_client(s->cfg, &s->client_addr, key, keylen);
    struct cidr k;
    if ((forgot || s->redis_answer == REDIS_REMEMBERED) && s->cfg->memory.enabled &&
        memory_key(s, &k)) {
        redis_memory_forget(s->host->redis, &k);
    }
    return forgot;
}

/* ---- TLS with the client ---- */

static void tls_established(struct session *s) {
    SSL *ssl = s->client.ssl;
    s->tls = CLIENT_TLS_ON;
    s->progress++;
    snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(ssl));
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s",
             cipher ? SSL_CIPHER_standard_name(cipher) : "unknown");
    const char *group = SSL_get_curve_name(SSL_get_curve_id(ssl));
    snprintf(s->tls_group, sizeof(s->tls_group), "%s", group ? group : "");
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(s->sni, sizeof(s->sni), "%s", sni ? sni : "");
    char sni_log[80];
    log_info("session=%s event=tls mode=%s version=%s cipher=%s group=%s sni=%s resumed=%s",
             s->id, s->tls_mode, s->tls_version, s->tls_cipher,
             s->tls_group[0] ? s->tls_group : "-",
             s->sni[0] ? log_sanitize(sni_log, sizeof(sni_log), s->sni, strlen(s->sni)) : "-",
             SSL_session_reused(ssl) ? "yes" : "no");
    metrics_handshake(s->host->metrics, session_listener_index(s),
                      metrics_tls_of(s->tls_version), s->tls_group);
    /* A client that completes a handshake can do TLS with us: whatever
     * failed before from its key is forgotten (any listener). */
    char key[64];
    if (forget_everywhere(s, key, sizeof(key))) {
        log_info("session=%s event=starttls_memory_cleared client=%s key=%s", s->id,
                 s->client_ip, key);
    }
    if (s->backend_restart) {
        s->starttls_note = "used";
        metrics_starttls(s->host->metrics, session_listener_index(s), MS_USED);
        connect_backend(s); /* its greeting is swallowed: backend_restarted */
    }
}

void starttls_memory_session_end(struct session *s) {
    /* With release_without_mail: a remembered sender that saw the EHLO
     * reply without STARTTLS and left without trying MAIL wants TLS or
     * nothing (Postfix at encrypt or dane, MTA-STS enforce), and
     * withholding STARTTLS only delays its mail: forget it, so its next
     * attempt is offered STARTTLS again. Off by default: any probe
     * (EHLO, QUIT) would undo the memory. */
    if (!s->cfg->memory.release_without_mail || !s->starttls_remembered || !s->esmtp ||
        s->mail_attempted || s->result == NULL ||
        (strcmp(s->result, "quit") != 0 && strcmp(s->result, "client_closed") != 0)) {
        return;
    }
    char key[64];
    if (forget_everywhere(s, key, sizeof(key))) {
        log_info("session=%s event=starttls_memory_released client=%s reason=left_without_mail",
                 s->id, s->client_ip);
    }
}

int starttls_withheld(struct session *s) {
    if (s->starttls_decided) {
        return s->starttls_withheld;
    }
    s->starttls_decided = 1;
    char key[64];
    enum smem_decision d = smem_decide(s->cfg, s->listener, &s->client_addr,
                                       ev_now(s->host->loop), key, sizeof(key));
    const char *source = "local";
    struct cidr k;
    if (d == SMEM_OFFER && s->redis_answer == REDIS_REMEMBERED && memory_key(s, &k)) {
        /* Another proxy of the fleet saw this sender fail. */
        d = SMEM_REMEMBERED;
        source = "redis";
        cidr_format(&k, key, sizeof(key));
    }
    if (d != SMEM_OFFER) {
        s->starttls_withheld = 1;
        s->starttls_remembered = d == SMEM_REMEMBERED;
        s->starttls_note = "withheld";
        log_info("session=%s event=starttls_withheld client=%s listener=%s reason=%s key=%s "
                 "source=%s", s->id, s->client_ip, s->listener->name,
                 d == SMEM_REMEMBERED ? "remembered" : "never_offer", key[0] ? key : "-",
                 d == SMEM_NEVER_OFFER ? "config" : source);
    }
    return s->starttls_withheld;
}

/* tls_failed ends a session whose handshake failed. Nothing is said in
 * plaintext (the client is speaking TLS) and there is no fallback to
 * plaintext on this connection. */
void tls_failed(struct session *s, const char *reason) {
    /* After STARTTLS on a listener where TLS is optional the sender is
     * remembered: its next attempt is not offered STARTTLS and is
     * delivered in plaintext (ARCHITECTURE.md §5.6). */
    int remembered = 0;
    char key[64] = "-";
    if (strcmp(s->tls_mode, "starttls") == 0) {
        s->starttls_note = "failed";
        metrics_starttls(s->host->metrics, session_listener_index(s), MS_FAILED);
        remembered = smem_failed(s->cfg, s->listener, &s->client_addr, reason,
                                 ev_now(s->host->loop), key, sizeof(key));
        struct cidr k;
        if (remembered && memory_key(s, &k)) {
            redis_memory_record(s->host->redis, &k, reason, s->cfg->memory.ttl);
        }
    }
    log_info("session=%s event=tls_failed client=%s listener=%s mode=%s reason=%s "
             "remembered=%s key=%s",
             s->id, s->client_ip, s->listener->name, s->tls_mode, reason,
             remembered ? "yes" : "no", remembered ? key : "-");
    s->result = "tls_handshake_failed";
    metrics_handshake_failure(s->host->metrics, session_listener_index(s),
                              metrics_fail_of(reason));
    session_close_backend(s);
    s->client_error = 1; /* nothing more may be written to it */
    session_set_state(s, STATE_DEAD);
}

/* client_sent_nothing says whether not one octet of TLS came from the
 * client since the handshake began: no ClientHello at all. */
int client_sent_nothing(const struct session *s) {
    BIO *rbio = s->client.ssl != NULL ? SSL_get_rbio(s->client.ssl) : NULL;
    return rbio != NULL && BIO_number_read(rbio) == 0;
}

void client_handshake(struct session *s) {
    switch (conn_handshake(&s->client)) {
    case CONN_IO_OK:
        tls_established(s);
        break;
    case CONN_IO_AGAIN:
        break;
    case CONN_IO_EOF: {
        char reason[128];
        tls_describe_error(reason, sizeof(reason),
                           client_sent_nothing(s) ? "client_closed_before_client_hello"
                                                  : "client_closed_connection");
        tls_failed(s, reason);
        break;
    }
    case CONN_IO_ERROR: {
        char reason[128];
        tls_describe_error(reason, sizeof(reason), "connection_error");
        tls_failed(s, reason);
        break;
    }
    }
}

/* start_client_tls switches the client connection to TLS (after the 220
 * for STARTTLS, at once for implicit TLS). */
int start_client_tls(struct session *s, const char *mode) {
    s->client.ssl = tls_new_server(s->snap->tls, (size_t)(s->listener - s->cfg->listeners),
                                   s->client.fd);
    if (s->client.ssl == NULL) {
        log_error("session=%s event=tls_setup_failed", s->id);
        return 0;
    }
    s->tls_mode = mode;
    s->tls = CLIENT_TLS_HANDSHAKE;
    s->progress++;
    /* A deadline, not an idle timer: a client dripping its handshake a
     * byte at a time must not hold the connection. */
    s->tls_deadline = ev_now(s->host->loop) + s->cfg->handshake_timeout;
    s->starttls_ready = 0;
    s->starttls_queued = 0;
    return 1;
}

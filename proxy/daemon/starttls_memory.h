/*
 * starttls_memory.h - the STARTTLS failure memory of the running proxy
 * (ARCHITECTURE.md §5.6): which senders are not offered STARTTLS on
 * listeners where TLS is optional, because their last STARTTLS handshake
 * failed or because the operator lists them in never_offer.
 *
 * One table for the whole process (core/failmem.h, its own mutex), so a
 * failure seen by one worker is honoured by all. main.c makes it before
 * the workers start, loads and saves the state file in [proxy]
 * state_dir, and serves the "memory" control command; sessions ask it
 * at EHLO and STARTTLS and tell it of handshake failures and successes.
 */
#ifndef SMTP_TLS_PROXY_STARTTLS_MEMORY_H
#define SMTP_TLS_PROXY_STARTTLS_MEMORY_H

#include <stddef.h>

#include "config/config.h"
#include "core/addr.h"

struct control_out;

/* The file in state_dir. */
#define STARTTLS_MEMORY_FILE "starttls-memory.state"

enum smem_decision {
    SMEM_OFFER = 0,       /* offer STARTTLS as usual */
    SMEM_REMEMBERED = 1,  /* withheld: a recent handshake from this key failed */
    SMEM_NEVER_OFFER = 2, /* withheld: [starttls_memory] never_offer */
};

/* smem_start makes the table for |cfg| and, with a state_dir, loads the
 * state file. A missing file is normal; a corrupt or foreign one is
 * logged and ignored. Returns 0 only when out of memory. */
int smem_start(const struct config *cfg, double now);

/* smem_reconfigure applies a reloaded |cfg| (max_entries). */
void smem_reconfigure(const struct config *cfg);

/* smem_save writes the state file atomically (a temporary file, fsync,
 * rename) when |cfg| has a state_dir. Returns 1 when written or when
 * there is nothing to write to; 0 (logged) when it failed. */
int smem_save(const struct config *cfg, double now);

/* smem_stop frees the table (after the last save). */
void smem_stop(void);

/* smem_decide says whether |client| on listener |l| is offered STARTTLS.
 * |key|, when not NULL, receives the key consulted ("192.0.2.7/32"). */
enum smem_decision smem_decide(const struct config *cfg, const struct listener_config *l,
                               const struct net_addr *client, double now, char *key,
                               size_t keylen);

/* smem_failed tells of a failed handshake after STARTTLS on listener |l|.
 * Returns 1 when it was remembered (|key| receives the key), 0 when the
 * memory does not act there or |client| is in always_offer. */
int smem_failed(const struct config *cfg, const struct listener_config *l,
                const struct net_addr *client, const char *reason, double now, char *key,
                size_t keylen);

/* smem_forget_client forgets every entry over |client| (whatever
 * prefix it was recorded by): after a TLS handshake from it that
 * worked (any listener), or a session that was not offered STARTTLS
 * and left without trying MAIL (a sender that requires TLS). Returns 1
 * when an entry was removed; |key| receives the client's address. */
int smem_forget_client(const struct config *cfg, const struct net_addr *client, char *key,
                       size_t keylen);

/* smem_expire drops the entries expired at |now| (housekeeping, so the
 * size metric is true); returns how many. */
size_t smem_expire(double now);

/* For the metrics: entries now, and evictions by the bound so far. */
size_t smem_entries(void);
size_t smem_evictions(void);

/* smem_control is the "memory" control command (daemon/control.h):
 *   memory list            every live entry: key, reason, first and last
 *                          seen, count, expiry
 *   memory forget ADDR     the entry of that address (its key under the
 *                          configured prefixes) or, for a CIDR, every
 *                          entry within it
 *   memory forget all      every entry */
int smem_control(void *arg, int argc, char **argv, struct control_out *out);

#endif

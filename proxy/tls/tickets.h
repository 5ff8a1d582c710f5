/*
 * tickets.h - the keys that seal TLS session tickets: one ring for the
 * whole process, kept across reloads, rotated on a schedule.
 *
 * BoringSSL keeps its own ticket keys per SSL_CTX; every reload builds
 * new contexts, so each SIGHUP (and every certificate renewal) would make
 * every sender's ticket useless. The ring outlives the snapshots: a key
 * seals new tickets for one rotation period and opens them for one more,
 * so a ticket, which lives one period (tickets_attach sets the lifetimes),
 * always finds its key, and no key is older than two periods (forward
 * secrecy for TLS 1.2, whose tickets carry the master secret). Keys are
 * random, in memory only: a restart starts a new ring.
 *
 * Tickets are AES-256-GCM: key name (16) | nonce (12) | sealed session
 * and tag (16), the key name as additional data. Threads share the ring
 * under a read-write lock; rotation takes the write side.
 */
#ifndef SMTP_TLS_PROXY_TICKETS_H
#define SMTP_TLS_PROXY_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define TICKETS_NAME_LEN 16
#define TICKETS_NONCE_LEN 12
#define TICKETS_TAG_LEN 16
#define TICKETS_OVERHEAD (TICKETS_NAME_LEN + TICKETS_NONCE_LEN + TICKETS_TAG_LEN)

/* tickets_attach makes |ctx| seal and open its tickets with the ring,
 * whose keys rotate every |rotation| seconds (> 0), and gives its
 * sessions that lifetime (TLS 1.2 and 1.3). A later call with another
 * period changes it for every context (a reload that changed [tls]
 * ticket_rotation). The first key is made with the first ticket; when
 * one cannot be made (randomness, memory) the client gets no ticket. */
void tickets_attach(SSL_CTX *ctx, double rotation);

/* The ring's operations, with the time passed in, for the unit tests and
 * for the AEAD method behind tickets_attach. */

/* tickets_seal_at writes the ticket of |in_len| bytes at |in| to |out|
 * (at most |max_out| bytes, *out_len set), rotating first when the
 * current key is |rotation| old at |now|. Returns 1 or 0. */
int tickets_seal_at(uint8_t *out, size_t *out_len, size_t max_out, const uint8_t *in,
                    size_t in_len, double now);

/* tickets_open_at authenticates and decrypts the ticket |in| into |out|
 * with the key its name names, if that key is still in the ring at
 * |now|. Returns ssl_ticket_aead_success, or ssl_ticket_aead_ignore_ticket
 * for anything else (unknown or retired key, tampered, short): the
 * client then gets a full handshake, never an error. */
enum ssl_ticket_aead_result_t tickets_open_at(uint8_t *out, size_t *out_len, size_t max_out,
                                              const uint8_t *in, size_t in_len, double now);

/* tickets_set_rotation sets the period (seconds, > 0). */
void tickets_set_rotation(double rotation);

/* tickets_rotations counts the keys made since start (1 after the
 * first ticket); for the unit tests and the debug log. */
unsigned long tickets_rotations(void);

/* tickets_reset drops every key (the unit tests start from nothing). */
void tickets_reset(void);

#endif

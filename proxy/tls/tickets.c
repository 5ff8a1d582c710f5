/*
 * tickets.c - the process's ring of session ticket keys (tickets.h).
 *
 * Two slots: the current key seals, both open. A key is made when the
 * current one is a rotation period old (lazily, at the next ticket), and
 * opens nothing once it is two periods old. Slots are reused in place,
 * never copied: an EVP_AEAD_CTX is not promised to survive a move.
 */
#include "tls/tickets.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/aead.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#define TICKETS_KEY_LEN 32

struct ticket_key {
    int set;
    uint8_t name[TICKETS_NAME_LEN];
    double created;
    EVP_AEAD_CTX aead;
};

static struct {
    pthread_rwlock_t lock;
    struct ticket_key slot[2];
    unsigned current; /* the slot that seals */
    double rotation;
    unsigned long made;
} ring = {.lock = PTHREAD_RWLOCK_INITIALIZER, .rotation = 12 * 3600};

/* key_drop forgets |k|'s secret. */
static void key_drop(struct ticket_key *k) {
    if (k->set) {
        EVP_AEAD_CTX_cleanup(&k->aead);
    }
    OPENSSL_cleanse(k, sizeof(*k));
}

/* key_make fills |k| with a fresh random name and key made at |now|.
 * Returns 1, or 0 (|k| unset) without randomness or memory. */
static int key_make(struct ticket_key *k, double now) {
    uint8_t secret[TICKETS_KEY_LEN];
    key_drop(k);
    if (!RAND_bytes(k->name, sizeof(k->name)) || !RAND_bytes(secret, sizeof(secret))) {
        return 0;
    }
    int ok = EVP_AEAD_CTX_init(&k->aead, EVP_aead_aes_256_gcm(), secret, sizeof(secret),
                               TICKETS_TAG_LEN, NULL);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (!ok) {
        return 0;
    }
    k->set = 1;
    k->created = now;
    return 1;
}

/* stale: the current key is missing or a period old (caller holds the lock). */
static int stale(double now) {
    const struct ticket_key *k = &ring.slot[ring.current];
    return !k->set || now - k->created >= ring.rotation || now < k->created;
}

/* rotate makes a new current key in the other slot, which drops the
 * previous one: it was at least a period older than the current, so it
 * is two periods old when the current one turns one (write lock held). */
static void rotate(double now) {
    unsigned next = ring.current ^ 1u;
    if (key_make(&ring.slot[next], now)) {
        ring.current = next;
        ring.made++;
    }
}

int tickets_seal_at(uint8_t *out, size_t *out_len, size_t max_out, const uint8_t *in,
                    size_t in_len, double now) {
    pthread_rwlock_rdlock(&ring.lock);
    if (stale(now)) {
        pthread_rwlock_unlock(&ring.lock);
        pthread_rwlock_wrlock(&ring.lock);
        if (stale(now)) {
            rotate(now);
        }
        pthread_rwlock_unlock(&ring.lock);
        pthread_rwlock_rdlock(&ring.lock);
    }
    const struct ticket_key *k = &ring.slot[ring.current];
    int ok = k->set && max_out >= TICKETS_NAME_LEN + TICKETS_NONCE_LEN;
    size_t sealed = 0;
    if (ok) {
        uint8_t *nonce = out + TICKETS_NAME_LEN;
        memcpy(out, k->name, TICKETS_NAME_LEN);
        ok = RAND_bytes(nonce, TICKETS_NONCE_LEN) &&
             EVP_AEAD_CTX_seal(&k->aead, nonce + TICKETS_NONCE_LEN, &sealed,
                               max_out - TICKETS_NAME_LEN - TICKETS_NONCE_LEN, nonce,
                               TICKETS_NONCE_LEN, in, in_len, k->name, TICKETS_NAME_LEN);
    }
    pthread_rwlock_unlock(&ring.lock);
    *out_len = ok ? TICKETS_NAME_LEN + TICKETS_NONCE_LEN + sealed : 0;
    return ok;
}

/* key_named returns the slot whose key is named by |name| and still opens
 * at |now| (younger than two periods), or NULL (read lock held). */
static const struct ticket_key *key_named(const uint8_t *name, double now) {
    for (unsigned i = 0; i < 2; i++) {
        const struct ticket_key *k = &ring.slot[i];
        if (k->set && CRYPTO_memcmp(k->name, name, TICKETS_NAME_LEN) == 0 &&
            now >= k->created && now - k->created < 2 * ring.rotation) {
            return k;
        }
    }
    return NULL;
}

enum ssl_ticket_aead_result_t tickets_open_at(uint8_t *out, size_t *out_len, size_t max_out,
                                              const uint8_t *in, size_t in_len, double now) {
    if (in_len < TICKETS_OVERHEAD) {
        return ssl_ticket_aead_ignore_ticket;
    }
    pthread_rwlock_rdlock(&ring.lock);
    const struct ticket_key *k = key_named(in, now);
    const uint8_t *nonce = in + TICKETS_NAME_LEN;
    int ok = k != NULL &&
             EVP_AEAD_CTX_open(&k->aead, out, out_len, max_out, nonce, TICKETS_NONCE_LEN,
                               nonce + TICKETS_NONCE_LEN,
                               in_len - TICKETS_NAME_LEN - TICKETS_NONCE_LEN, in,
                               TICKETS_NAME_LEN);
    pthread_rwlock_unlock(&ring.lock);
    return ok ? ssl_ticket_aead_success : ssl_ticket_aead_ignore_ticket;
}

/* ---- the AEAD method BoringSSL calls ---- */

/* monotonic: key ages follow the monotonic clock, so a wall-clock step
 * neither retires the ring early nor keeps a key longer. */
static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t method_overhead(SSL *ssl) {
    (void)ssl;
    return TICKETS_OVERHEAD;
}

static int method_seal(SSL *ssl, uint8_t *out, size_t *out_len, size_t max_out,
                       const uint8_t *in, size_t in_len) {
    (void)ssl;
    return tickets_seal_at(out, out_len, max_out, in, in_len, monotonic());
}

static enum ssl_ticket_aead_result_t method_open(SSL *ssl, uint8_t *out, size_t *out_len,
                                                 size_t max_out, const uint8_t *in,
                                                 size_t in_len) {
    (void)ssl;
    return tickets_open_at(out, out_len, max_out, in, in_len, monotonic());
}

static const SSL_TICKET_AEAD_METHOD ring_method = {
    .max_overhead = method_overhead,
    .seal = method_seal,
    .open = method_open,
};

void tickets_set_rotation(double rotation) {
    pthread_rwlock_wrlock(&ring.lock);
    ring.rotation = rotation;
    pthread_rwlock_unlock(&ring.lock);
}

void tickets_attach(SSL_CTX *ctx, double rotation) {
    tickets_set_rotation(rotation);
    SSL_CTX_set_ticket_aead_method(ctx, &ring_method);
    /* A ticket lives one period, so the key that sealed it (which opens
     * for two) is always there while the ticket is valid. */
    SSL_CTX_set_timeout(ctx, (uint32_t)rotation);
    SSL_CTX_set_session_psk_dhe_timeout(ctx, (uint32_t)rotation);
}

unsigned long tickets_rotations(void) {
    pthread_rwlock_rdlock(&ring.lock);
    unsigned long n = ring.made;
    pthread_rwlock_unlock(&ring.lock);
    return n;
}

void tickets_reset(void) {
    pthread_rwlock_wrlock(&ring.lock);
    key_drop(&ring.slot[0]);
    key_drop(&ring.slot[1]);
    ring.current = 0;
    ring.made = 0;
    pthread_rwlock_unlock(&ring.lock);
}

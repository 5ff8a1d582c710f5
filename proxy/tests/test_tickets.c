/*
 * test_tickets.c - tickets.h: the ring of session ticket keys, with the
 * time passed in: what a key seals it opens, for two periods and no
 * longer; a new key every period; tampering and strangers are ignored.
 */
#include <string.h>

#include "tls/tickets.h"
#include "unit.h"

#define HOUR 3600.0

static const uint8_t session[] = "a serialized SSL_SESSION stands here";

/* seal_at seals |session| at |now| into |t| and returns its length. */
static size_t seal_at(uint8_t *t, size_t cap, double now) {
    size_t n = 0;
    CHECK_INT(tickets_seal_at(t, &n, cap, session, sizeof(session), now), 1);
    return n;
}

/* opens_at says whether |t| opens at |now| and gives back |session|. */
static int opens_at(const uint8_t *t, size_t n, double now) {
    uint8_t out[256];
    size_t len = 0;
    if (tickets_open_at(out, &len, sizeof(out), t, n, now) != ssl_ticket_aead_success) {
        return 0;
    }
    return len == sizeof(session) && memcmp(out, session, len) == 0;
}

UNIT_TEST(tickets_open_what_they_seal_and_carry_the_overhead_they_declare) {
    tickets_reset();
    tickets_set_rotation(12 * HOUR);
    uint8_t t[256];
    size_t n = seal_at(t, sizeof(t), 1000);
    CHECK_INT(n, sizeof(session) + TICKETS_OVERHEAD);
    CHECK(opens_at(t, n, 1000));
    CHECK(opens_at(t, n, 1000 + 23 * HOUR));
    CHECK_INT(tickets_rotations(), 1);
    /* Two tickets of one session differ: a fresh nonce each. */
    uint8_t u[256];
    size_t m = seal_at(u, sizeof(u), 1001);
    CHECK_INT(m, n);
    CHECK(memcmp(t, u, TICKETS_NAME_LEN) == 0);
    CHECK(memcmp(t, u, n) != 0);
}

UNIT_TEST(tickets_get_a_new_key_each_period_and_the_previous_still_opens) {
    tickets_reset();
    tickets_set_rotation(HOUR);
    uint8_t old[256], young[256];
    size_t n = seal_at(old, sizeof(old), 0);
    size_t m = seal_at(young, sizeof(young), HOUR + 1);
    CHECK_INT(tickets_rotations(), 2);
    CHECK(memcmp(old, young, TICKETS_NAME_LEN) != 0);
    CHECK(opens_at(old, n, HOUR + 2));
    CHECK(opens_at(young, m, HOUR + 2));
}

UNIT_TEST(tickets_of_a_key_two_periods_old_are_ignored) {
    tickets_reset();
    tickets_set_rotation(HOUR);
    uint8_t t[256];
    size_t n = seal_at(t, sizeof(t), 0);
    /* No ticket made since: the key is still in the ring, yet too old. */
    CHECK(!opens_at(t, n, 2 * HOUR));
    CHECK(opens_at(t, n, 2 * HOUR - 1));
    /* Two rotations later the key is gone from the ring. */
    uint8_t u[256];
    seal_at(u, sizeof(u), HOUR);
    seal_at(u, sizeof(u), 2 * HOUR);
    CHECK_INT(tickets_rotations(), 3);
    CHECK(!opens_at(t, n, 2 * HOUR - 1));
}

UNIT_TEST(tickets_tampered_truncated_or_from_a_reset_ring_are_ignored) {
    tickets_reset();
    tickets_set_rotation(HOUR);
    uint8_t t[256];
    size_t n = seal_at(t, sizeof(t), 0);
    for (size_t i = 0; i < n; i += 7) {
        t[i] ^= 0x01;
        CHECK(!opens_at(t, n, 1));
        t[i] ^= 0x01;
    }
    CHECK(opens_at(t, n, 1));
    CHECK(!opens_at(t, n - 1, 1));
    CHECK(!opens_at(t, TICKETS_OVERHEAD - 1, 1));
    tickets_reset(); /* a restart: new keys */
    CHECK(!opens_at(t, n, 1));
}

UNIT_TEST(tickets_seal_refuses_an_output_too_small) {
    tickets_reset();
    tickets_set_rotation(HOUR);
    uint8_t t[256];
    size_t n = 99;
    CHECK_INT(tickets_seal_at(t, &n, sizeof(session) + TICKETS_OVERHEAD - 1, session,
                              sizeof(session), 0), 0);
    CHECK_INT(n, 0);
}

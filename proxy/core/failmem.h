/*
 * failmem.h - the STARTTLS failure memory (issue 12): client prefixes
 * whose TLS handshake failed after STARTTLS, so that the proxy stops
 * offering them STARTTLS for a while instead of failing the same way on
 * every connection.
 *
 * One table is shared by all workers: every function takes the table's
 * own mutex. It is pure otherwise: no I/O, no clock; the caller passes
 * the time as |now|, unix seconds.
 *
 * Entries are keyed by a struct cidr (cidr.h; keys are taken in the
 * canonical form, cidr_normalize). An entry whose |expires| <= now is
 * absent: lookup, record, list, serialize and expire remove such
 * entries when they meet them.
 *
 * Bounded: at most |max_entries| entries; recording a new key in a full
 * table evicts the least recently used entry (record and lookup are
 * uses; an expired entry at the LRU end is dropped first without
 * counting as an eviction). Lookups are O(1) on average: a hash table of
 * uint32 indices over a slab of entries, the LRU order a doubly linked
 * list threaded through the slab.
 *
 * Memory: the slab grows by doubling (from 8) up to max_entries and the
 * hash array by doubling (from 16) while the table holds more entries
 * than buckets, so a table of 10 entries holds memory for 16, not for
 * max_entries. Per entry, 128 bytes in the slab plus 4 to 8 bytes of
 * buckets: see failmem_bound_bytes.
 */
#ifndef SMTP_TLS_PROXY_FAILMEM_H
#define SMTP_TLS_PROXY_FAILMEM_H

#include <stddef.h>

#include "core/cidr.h"

/* Reason text kept, NUL included: longer reasons are truncated, bytes
 * that are not printable ASCII become '?'. */
#define FAILMEM_REASON_MAX 64

/* The largest max_entries a table takes (larger values are taken as
 * this): indices are 32 bits, and 2^24 entries are 2 GiB already. */
#define FAILMEM_MAX_LIMIT ((size_t)1 << 24)

struct failmem_entry {
    struct cidr key;
    char reason[FAILMEM_REASON_MAX];
    double first_seen, last_seen, expires; /* unix seconds */
    unsigned long count;                   /* failures recorded */
};

struct failmem;

/* failmem_new returns an empty table holding at most |max_entries|
 * entries (0 is taken as 1, more than FAILMEM_MAX_LIMIT as the limit),
 * or NULL when out of memory. No entry memory is allocated yet. */
struct failmem *failmem_new(size_t max_entries);

/* failmem_free frees |m| and its entries (NULL ok). */
void failmem_free(struct failmem *m);

/* failmem_set_max changes the bound (a reload): when |m| holds more
 * entries than |max_entries|, the least recently used ones are evicted
 * (counted in failmem_evicted) and the memory beyond the new bound is
 * given back. Same clamping as failmem_new. */
void failmem_set_max(struct failmem *m, size_t max_entries);

/* failmem_record records one failure of |key| at |now|: a new entry
 * (count 1, first_seen = last_seen = now, expires = now + ttl, evicting
 * the least recently used entry when the table is full) or, for a live
 * entry, an update (count + 1, last_seen = now, reason replaced, expires
 * = now + ttl). Either way the entry becomes the most recently used.
 * |reason| may be NULL (empty). Returns 1 when the key was new (an
 * expired entry of the same key counts as gone: it starts again at 1),
 * 0 when it was updated, -1 (nothing changed) when |key| is no valid
 * prefix, |now| or |ttl| is not finite, or out of memory. */
int failmem_record(struct failmem *m, const struct cidr *key, const char *reason, double now,
                   double ttl);

/* failmem_lookup returns 1 when |key| is remembered and live at |now|:
 * then it copies the entry to |out| (if not NULL) and makes it the most
 * recently used. Otherwise returns 0 (removing the entry if it expired). */
int failmem_lookup(struct failmem *m, const struct cidr *key, double now,
                   struct failmem_entry *out);

/* failmem_forget removes the entry of exactly |key| (live or expired).
 * Returns 1 if there was one. */
int failmem_forget(struct failmem *m, const struct cidr *key);

/* failmem_lookup_covering returns 1 when a live entry's key covers
 * |key| (for a client, its full-length prefix): the most specific such
 * entry, copied to |out| when not NULL and marked used. Entries keyed
 * with another prefix length than today's (a changed ipv4_prefix) still
 * match the addresses they cover. Only the prefix lengths present in the
 * table are tried. */
int failmem_lookup_covering(struct failmem *m, const struct cidr *key, double now,
                            struct failmem_entry *out);

/* failmem_forget_covering removes every entry whose key covers |key|
 * (a client's address: whatever prefix it was remembered by); returns
 * how many. */
size_t failmem_forget_covering(struct failmem *m, const struct cidr *key);

/* failmem_forget_within removes every entry whose key lies within
 * |range| (cidr_covers: "all of 192.0.2.0/24"; 0.0.0.0/0 and ::/0 for
 * all of a family). Returns how many were removed. */
size_t failmem_forget_within(struct failmem *m, const struct cidr *range);

/* failmem_forget_all removes every entry and gives their memory back.
 * Returns how many there were. */
size_t failmem_forget_all(struct failmem *m);

/* failmem_expire removes the entries expired at |now|; returns how many. */
size_t failmem_expire(struct failmem *m, double now);

/* failmem_count returns how many entries |m| holds (expired ones not
 * yet met included: failmem_expire first for the live count). */
size_t failmem_count(struct failmem *m);

/* failmem_evicted returns how many entries the LRU bound has evicted
 * since failmem_new (by record, deserialize and set_max), for metrics. */
size_t failmem_evicted(struct failmem *m);

/* failmem_memory_bytes returns the bytes |m| holds allocated now: the
 * struct, the entry slab and the hash array, as requested from malloc
 * (the allocator's own header on each of these three blocks is not
 * counted). Never more than failmem_bound_bytes of its current max
 * (after a shrinking failmem_set_max too, unless realloc refused to
 * shrink a block). */
size_t failmem_memory_bytes(struct failmem *m);

/* failmem_bound_bytes returns the worst case of failmem_memory_bytes for
 * a table of |max_entries| (clamped as failmem_new does):
 *   sizeof(struct failmem) + max * 128 + 4 * buckets,
 *   buckets = the smallest power of two >= max, at least 16,
 * that is at most 136 bytes per entry plus the struct (120 bytes on
 * LP64): 10,000 entries are 1,345,656 bytes. While the slab or the hash
 * array is being grown, the old and the new block exist together for a
 * moment. */
size_t failmem_bound_bytes(size_t max_entries);

/* failmem_list copies up to |n| live entries into |out|, the most
 * recently used first, removing expired ones it meets; listing is no
 * use. Returns how many were copied. */
size_t failmem_list(struct failmem *m, double now, struct failmem_entry *out, size_t n);

/* ---- the state file ----
 *
 * failmem_serialize returns the live entries as a text (malloc'd, the
 * caller frees; NUL-terminated, *len set to its length without the NUL),
 * or NULL when out of memory. The format, one record a line, each ended by "\n":
 *
 *   smtp-tls-proxy starttls-memory 1
 *   <cidr> <first_seen> <last_seen> <expires> <count> <reason>
 *   ...
 *   end <number of entry lines>
 *
 * Entry lines come least recently used first, so loading them in order
 * rebuilds the LRU order. <cidr> is cidr_format's text; the three times
 * are unix seconds with three decimals ("%.3f": a round trip keeps them
 * to the millisecond); <count> is decimal, at least 1; <reason> is the
 * reason with every blank written '_' (not changed back on loading), or
 * "-" for an empty reason. Fields are separated by one space. Expired
 * entries are not written (and are removed). */
char *failmem_serialize(struct failmem *m, double now, size_t *len);

/* failmem_deserialize loads such a text (|len| bytes, no NUL needed)
 * into |m|, line by line as failmem_serialize wrote them: each entry is
 * added, or replaces the entry of the same key, as the most recently
 * used; entries expired at |now| are skipped; when the table is full the
 * least recently used are evicted. All or nothing: a foreign or
 * unsupported first line, a malformed entry line (field count, bad
 * prefix, a time that is not a finite decimal, a count that is not a
 * decimal of at least 1, a reason with blanks or bytes that are not
 * printable ASCII, or longer than FAILMEM_REASON_MAX - 1), a NUL byte,
 * a missing "end N" line or an N that is not the number of entry lines
 * (a truncated file), or anything after the end line return -1, |why|
 * says what and where ("line 7: bad prefix: ..."), and |m| is unchanged
 * (also when out of memory). Otherwise returns the number of entries
 * loaded (lines not skipped as expired). A CR before each LF is
 * allowed; the LF after the end line may be missing. */
/* (Also refused: an entry whose times are out of order, first_seen <=
 * last_seen <= expires, or that expires more than ten years after |now|.) */
long failmem_deserialize(struct failmem *m, const char *text, size_t len, double now, char *why,
                         size_t whylen);

#endif

/*
 * sni.h - which certificate answers a server name (ARCHITECTURE.md §5.3).
 *
 * Names map to up to one certificate per key type (ECDSA, RSA), so one
 * name can be served to every client with a key it supports. Lookup is
 * exact first, then a wildcard one label deep ("*.example.test" matches
 * "a.example.test", not "a.b.example.test" nor "example.test": RFC 6125
 * 6.4.3), then nothing (the caller falls back to the default).
 */
#ifndef SMTP_TLS_PROXY_SNI_H
#define SMTP_TLS_PROXY_SNI_H

#include <stddef.h>

enum sni_key {
    SNI_KEY_ECDSA = 0,
    SNI_KEY_RSA = 1,
    SNI_KEY_COUNT = 2,
};

#define SNI_NONE ((size_t)-1)

struct sni_entry {
    char *name;                 /* lower case; "*.x" for wildcards */
    size_t cert[SNI_KEY_COUNT]; /* certificate index, or SNI_NONE */
};

struct sni_table {
    struct sni_entry *entries; /* sorted by name after sni_table_sort */
    size_t n;
};

enum sni_add_result {
    SNI_ADD_OK = 0,
    SNI_ADD_DUPLICATE = 1, /* the name already has a certificate of that key type */
    SNI_ADD_NOMEM = 2,
};

/* sni_table_add maps |name| (any case) and key type |key| to certificate
 * |cert|. The first certificate for a name and key type wins. */
enum sni_add_result sni_table_add(struct sni_table *t, const char *name, enum sni_key key,
                                  size_t cert);

/* sni_table_sort must be called once after the last add. */
void sni_table_sort(struct sni_table *t);

/* sni_lookup finds the entry serving |host| (any case; a trailing dot is
 * ignored), or NULL. */
const struct sni_entry *sni_lookup(const struct sni_table *t, const char *host);

/* sni_choose picks from |e| the certificate for a client that can
 * (|ecdsa_ok|) or cannot use ECDSA: ECDSA when possible, else RSA, else
 * whatever there is (the handshake then fails cleanly). */
size_t sni_choose(const struct sni_entry *e, int ecdsa_ok);

void sni_table_free(struct sni_table *t);

#endif

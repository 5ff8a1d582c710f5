/*
 * sni.c - the name -> certificate table.
 */
#include "protocol/sni.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define SNI_NAME_MAX 255

/* normalise copies |src| lower-cased without a trailing dot into |out|.
 * Returns 0 for names too long or empty. */
static int normalise(char *out, const char *src) {
    size_t n = strlen(src);
    if (n > 0 && src[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n > SNI_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)tolower((unsigned char)src[i]);
    }
    out[n] = '\0';
    return 1;
}

static struct sni_entry *find_linear(struct sni_table *t, const char *name) {
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->entries[i].name, name) == 0) {
            return &t->entries[i];
        }
    }
    return NULL;
}

enum sni_add_result sni_table_add(struct sni_table *t, const char *name, enum sni_key key,
                                  size_t cert) {
    char norm[SNI_NAME_MAX + 1];
    if (!normalise(norm, name)) {
        return SNI_ADD_DUPLICATE;
    }
    struct sni_entry *e = find_linear(t, norm);
    if (e == NULL) {
        struct sni_entry *grown = realloc(t->entries, (t->n + 1) * sizeof(*grown));
        if (grown == NULL) {
            return SNI_ADD_NOMEM;
        }
        t->entries = grown;
        e = &t->entries[t->n];
        e->name = strdup(norm);
        if (e->name == NULL) {
            return SNI_ADD_NOMEM;
        }
        for (int k = 0; k < SNI_KEY_COUNT; k++) {
            e->cert[k] = SNI_NONE;
        }
        t->n++;
    }
    if (e->cert[key] != SNI_NONE) {
        return SNI_ADD_DUPLICATE;
    }
    e->cert[key] = cert;
    return SNI_ADD_OK;
}

static int compare_entries(const void *a, const void *b) {
    return strcmp(((const struct sni_entry *)a)->name, ((const struct sni_entry *)b)->name);
}

void sni_table_sort(struct sni_table *t) {
    if (t->n > 1) {
        qsort(t->entries, t->n, sizeof(*t->entries), compare_entries);
    }
}

static const struct sni_entry *find_sorted(const struct sni_table *t, const char *name) {
    struct sni_entry key = {.name = (char *)name};
    return t->n ? bsearch(&key, t->entries, t->n, sizeof(*t->entries), compare_entries)
                : NULL;
}

const struct sni_entry *sni_lookup(const struct sni_table *t, const char *host) {
    char norm[SNI_NAME_MAX + 3];
    if (host == NULL || !normalise(norm + 1, host)) {
        return NULL;
    }
    const struct sni_entry *e = find_sorted(t, norm + 1);
    if (e != NULL) {
        return e;
    }
    /* "a.example.test" -> "*.example.test"; the first label must be
     * non-empty and the rest must hold a dot (no "*.test"-style match of
     * a bare label). */
    char *dot = strchr(norm + 1, '.');
    if (dot == NULL || dot == norm + 1 || strchr(dot + 1, '.') == NULL) {
        return NULL;
    }
    char *wild = dot - 1;
    wild[0] = '*';
    return find_sorted(t, wild);
}

size_t sni_choose(const struct sni_entry *e, int ecdsa_ok) {
    if (ecdsa_ok && e->cert[SNI_KEY_ECDSA] != SNI_NONE) {
        return e->cert[SNI_KEY_ECDSA];
    }
    if (e->cert[SNI_KEY_RSA] != SNI_NONE) {
        return e->cert[SNI_KEY_RSA];
    }
    return e->cert[SNI_KEY_ECDSA];
}

void sni_table_free(struct sni_table *t) {
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].name);
    }
    free(t->entries);
    t->entries = NULL;
    t->n = 0;
}

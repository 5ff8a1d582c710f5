/*
 * client_table.c - a chained hash of address -> live session count under
 * one mutex: entered once per accept and left once per session end, so
 * contention is no concern next to the cost of a connection.
 */
#include "core/client_table.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

struct client_node {
    uint8_t key[16];
    unsigned count;
    struct client_node *next;
};

struct client_table {
    pthread_mutex_t lock;
    struct client_node *buckets[BUCKETS];
};

struct client_table *client_table_new(void) {
    struct client_table *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        pthread_mutex_init(&t->lock, NULL);
    }
    return t;
}

/* key_of writes |a| as 16 bytes of IPv6 (anything else as zeros). */
static void key_of(const struct net_addr *a, uint8_t key[16]) {
    struct ip_addr ip;
    if (net_addr_ip(a, &ip)) {
        ip_addr_key(&ip, key);
    } else {
        memset(key, 0, 16);
    }
}

static size_t bucket_of(const uint8_t key[16]) {
    /* FNV-1a: addresses are not secret, but spread matters little here
     * since chains are bounded by the per-client and global caps. */
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++) {
        h = (h ^ key[i]) * 16777619u;
    }
    return h % BUCKETS;
}

static struct client_node **find(struct client_table *t, const uint8_t key[16]) {
    struct client_node **p = &t->buckets[bucket_of(key)];
    while (*p != NULL && memcmp((*p)->key, key, 16) != 0) {
        p = &(*p)->next;
    }
    return p;
}

int client_table_enter(struct client_table *t, const struct net_addr *a, unsigned limit) {
    uint8_t key[16];
    key_of(a, key);
    int ok = 0;
    pthread_mutex_lock(&t->lock);
    struct client_node **p = find(t, key);
    if (*p == NULL) {
        struct client_node *n = calloc(1, sizeof(*n));
        if (n != NULL && limit > 0) {
            memcpy(n->key, key, 16);
            n->count = 1;
            *p = n;
            ok = 1;
        } else {
            free(n);
        }
    } else if ((*p)->count < limit) {
        (*p)->count++;
        ok = 1;
    }
    pthread_mutex_unlock(&t->lock);
    return ok;
}

void client_table_leave(struct client_table *t, const struct net_addr *a) {
    uint8_t key[16];
    key_of(a, key);
    pthread_mutex_lock(&t->lock);
    struct client_node **p = find(t, key);
    if (*p != NULL && --(*p)->count == 0) {
        struct client_node *gone = *p;
        *p = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&t->lock);
}

unsigned client_table_count(struct client_table *t, const struct net_addr *a) {
    uint8_t key[16];
    key_of(a, key);
    pthread_mutex_lock(&t->lock);
    struct client_node **p = find(t, key);
    unsigned n = *p ? (*p)->count : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void client_table_free(struct client_table *t) {
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < BUCKETS; i++) {
        struct client_node *n = t->buckets[i];
        while (n != NULL) {
            struct client_node *next = n->next;
            free(n);
            n = next;
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/*
 * snapshot.c - publishing and reference-counting snapshots.
 *
 * Acquire takes a mutex: it happens once per session, uncontended in
 * practice, and makes "read the pointer, take a reference" atomic with
 * respect to publish without hazard pointers.
 */
#include "daemon/snapshot.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/backends.h"
#include "daemon/geoip.h"
#include "tls/tls.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *current;
static unsigned next_generation = 1;

struct snapshot *snapshot_new(struct config *cfg, char *err, size_t errlen) {
    struct snapshot *s = calloc(1, sizeof(*s));
    struct tls_store *tls = s ? tls_store_new(cfg, err, errlen) : NULL;
    struct geoip *geoip = tls ? geoip_open(cfg, err, errlen) : NULL;
    if (s == NULL || tls == NULL || geoip == NULL) {
        if (s == NULL) {
            snprintf(err, errlen, "%s: out of memory", cfg->path);
        }
        tls_store_free(tls);
        free(s);
        config_free(cfg);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    s->tls = tls;
    s->geoip = geoip;
    return s;
}

void snapshot_publish(struct snapshot *s) {
    /* The backend pool follows the targets of the configuration in force
     * (keeping what it knew of those that stay). */
    backends_configure(s->cfg);
    pthread_mutex_lock(&current_lock);
    struct snapshot *old = current;
    s->generation = next_generation++;
    current = s;
    pthread_mutex_unlock(&current_lock);
    snapshot_release(old);
}

struct snapshot *snapshot_acquire(void) {
    pthread_mutex_lock(&current_lock);
    struct snapshot *s = current;
    if (s != NULL) {
        atomic_fetch_add(&s->refs, 1);
    }
    pthread_mutex_unlock(&current_lock);
    return s;
}

void snapshot_release(struct snapshot *s) {
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    tls_store_free(s->tls);
    geoip_close(s->geoip);
    config_free(s->cfg);
    free(s);
}

void snapshot_clear(void) {
    pthread_mutex_lock(&current_lock);
    struct snapshot *old = current;
    current = NULL;
    pthread_mutex_unlock(&current_lock);
    snapshot_release(old);
    backends_stop();
}

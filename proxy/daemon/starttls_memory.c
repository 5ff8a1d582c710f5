/*
 * starttls_memory.c - the STARTTLS failure memory of the running proxy:
 * the process-wide table, the decisions sessions ask for, the state file
 * and the "memory" control command (ARCHITECTURE.md §5.6).
 */
#include "daemon/starttls_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/failmem.h"
#include "core/log.h"
#include "daemon/control.h"
#include "daemon/redis_memory.h"
#include "daemon/snapshot.h"

/* The table, shared by every worker (it has its own mutex). Made before
 * the workers start and freed after they have stopped. */
static struct failmem *table;

/* The state file may hold max_entries lines of about 120 octets. */
#define STATE_FILE_MAX ((size_t)256 << 20)

static void key_of(const struct config *cfg, const struct net_addr *client, struct cidr *k,
                   int *ok, char *text, size_t textlen) {
    *ok = cidr_of_addr(client, cfg->memory.ipv4_prefix, cfg->memory.ipv6_prefix, k);
    if (text != NULL && textlen > 0) {
        if (*ok) {
            cidr_format(k, text, textlen);
        } else {
            snprintf(text, textlen, "-");
        }
    }
}

static int state_path(const struct config *cfg, char *out, size_t outlen) {
    if (cfg->state_dir == NULL) {
        return 0;
    }
    int n = snprintf(out, outlen, "%s/%s", cfg->state_dir, STARTTLS_MEMORY_FILE);
    return n > 0 && (size_t)n < outlen;
}

/* load_state reads the state file into the table; every problem is
 * logged and leaves the table as it was. */
static void load_state(const struct config *cfg, double now) {
    char path[4096];
    if (!state_path(cfg, path, sizeof(path))) {
        log_info("event=starttls_memory_not_persisted reason=\"no [proxy] state_dir\"");
        return;
    }
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        log_info("event=starttls_memory_loaded file=%s entries=0 reason=\"no state file yet\"",
                 path);
        return;
    }
    char why[256];
    char *text = config_read_file(path, STATE_FILE_MAX, why, sizeof(why));
    if (text == NULL) {
        log_warning("event=starttls_memory_state_ignored file=%s reason=\"%s\"", path, why);
        return;
    }
    long n = failmem_deserialize(table, text, strlen(text), now, why, sizeof(why));
    free(text);
    if (n < 0) {
        /* Kept aside for whoever looks into it; the next save starts a
         * new file. */
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.corrupt", path);
        int moved = rename(path, aside) == 0;
        log_warning("event=starttls_memory_state_ignored file=%s reason=\"%s\"%s%s", path, why,
                    moved ? " moved_to=" : "", moved ? aside : "");
        return;
    }
    log_info("event=starttls_memory_loaded file=%s entries=%ld", path, n);
}

int smem_start(const struct config *cfg, double now) {
    table = failmem_new(cfg->memory.max_entries);
    if (table == NULL) {
        return 0;
    }
    load_state(cfg, now);
    return 1;
}

void smem_reconfigure(const struct config *cfg) {
    if (table != NULL) {
        failmem_set_max(table, cfg->memory.max_entries);
    }
}

/* write_all writes |len| octets of |p| to |fd|. */
static int write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }
            return 0;
        }
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

int smem_save(const struct config *cfg, double now) {
    char path[4096], tmp[4200];
    if (table == NULL || !state_path(cfg, path, sizeof(path))) {
        return 1;
    }
    size_t len = 0;
    char *text = failmem_serialize(table, now, &len);
    if (text == NULL) {
        log_error("event=starttls_memory_save_failed file=%s reason=out_of_memory", path);
        return 0;
    }
    /* One proxy per state_dir (its listeners cannot be shared), so a
     * fixed name: a leftover of a crash is replaced. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    const char *failed = NULL;
    if (fd < 0) {
        failed = "cannot create the temporary file";
    } else if (!write_all(fd, text, len)) {
        failed = "cannot write";
    } else if (fsync(fd) != 0) {
        failed = "cannot fsync";
    }
    int saved_errno = errno;
    if (fd >= 0 && close(fd) != 0 && failed == NULL) {
        failed = "cannot close";
        saved_errno = errno;
    }
    if (failed == NULL && rename(tmp, path) != 0) {
        failed = "cannot rename into place";
        saved_errno = errno;
    }
    free(text);
    if (failed != NULL) {
        unlink(tmp);
        log_error("event=starttls_memory_save_failed file=%s reason=\"%s: %s\"", path, failed,
                  strerror(saved_errno));
        return 0;
    }
    /* The rename is durable once the directory is. */
    int dfd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    log_debug("event=starttls_memory_saved file=%s entries=%zu", path, failmem_count(table));
    return 1;
}

void smem_stop(void) {
    failmem_free(table);
    table = NULL;
}

enum smem_decision smem_decide(const struct config *cfg, const struct listener_config *l,
                               const struct net_addr *client, double now, char *key,
                               size_t keylen) {
    if (key != NULL && keylen > 0) {
        key[0] = '\0';
    }
    if (!listener_tls_optional(l)) {
        return SMEM_OFFER;
    }
    if (cidr_list_contains(&cfg->memory.never_offer, client)) {
        if (key != NULL) {
            snprintf(key, keylen, "never_offer");
        }
        return SMEM_NEVER_OFFER;
    }
    if (!cfg->memory.enabled || table == NULL ||
        cidr_list_contains(&cfg->memory.always_offer, client)) {
        return SMEM_OFFER;
    }
    /* Any remembered prefix over the client counts, whatever prefix
     * length it was recorded with (ipv4_prefix may have changed since). */
    struct cidr full;
    struct failmem_entry e;
    if (!cidr_of_addr(client, 32, 128, &full) || !failmem_lookup_covering(table, &full, now, &e)) {
        return SMEM_OFFER;
    }
    if (key != NULL) {
        cidr_format(&e.key, key, keylen);
    }
    return SMEM_REMEMBERED;
}

int smem_failed(const struct config *cfg, const struct listener_config *l,
                const struct net_addr *client, const char *reason, double now, char *key,
                size_t keylen) {
    if (key != NULL && keylen > 0) {
        snprintf(key, keylen, "-");
    }
    if (!listener_tls_optional(l) || !cfg->memory.enabled || table == NULL ||
        cidr_list_contains(&cfg->memory.always_offer, client)) {
        return 0;
    }
    struct cidr k;
    int ok;
    key_of(cfg, client, &k, &ok, key, keylen);
    if (!ok) {
        return 0;
    }
    return failmem_record(table, &k, reason, now, cfg->memory.ttl) >= 0;
}

int smem_forget_client(const struct config *cfg, const struct net_addr *client, char *key,
                       size_t keylen) {
    if (!cfg->memory.enabled || table == NULL) {
        return 0;
    }
    struct cidr full;
    if (!cidr_of_addr(client, 32, 128, &full)) {
        return 0;
    }
    if (key != NULL) {
        cidr_format(&full, key, keylen);
    }
    return failmem_forget_covering(table, &full) > 0;
}

size_t smem_expire(double now) {
    return table != NULL ? failmem_expire(table, now) : 0;
}

size_t smem_entries(void) {
    return table != NULL ? failmem_count(table) : 0;
}

size_t smem_evictions(void) {
    return table != NULL ? failmem_evicted(table) : 0;
}

/* ---- the control command ---- */

static const char *utc(double t, char *out, size_t outlen) {
    if (!(t >= 0 && t < 253402300800.0)) { /* beyond 9999-12-31: not a time we wrote */
        snprintf(out, outlen, "-");
        return out;
    }
    time_t secs = (time_t)t;
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, outlen, "-");
    }
    return out;
}

static int memory_list(struct control_out *out) {
    double now = (double)time(NULL);
    size_t n = failmem_count(table);
    struct failmem_entry *entries = calloc(n ? n : 1, sizeof(*entries));
    if (entries == NULL) {
        control_printf(out, "out of memory\n");
        return 0;
    }
    n = failmem_list(table, now, entries, n);
    control_printf(out, "%-24s %-40s %-20s %-20s %6s %s\n", "key", "reason", "first_seen",
                   "last_seen", "count", "expires");
    for (size_t i = 0; i < n; i++) {
        char key[64], first[32], last[32], expires[32];
        cidr_format(&entries[i].key, key, sizeof(key));
        control_printf(out, "%-24s %-40s %-20s %-20s %6lu %s\n", key, entries[i].reason,
                       utc(entries[i].first_seen, first, sizeof(first)),
                       utc(entries[i].last_seen, last, sizeof(last)), entries[i].count,
                       utc(entries[i].expires, expires, sizeof(expires)));
    }
    control_printf(out, "%zu entries\n", n);
    free(entries);
    return 1;
}

/* save_now keeps a forget across a crash: it is written at once. */
static void save_now(void) {
    struct snapshot *snap = snapshot_acquire();
    smem_save(snap->cfg, (double)time(NULL));
    snapshot_release(snap);
}

static int memory_forget(struct control_out *out, const char *what, struct redis_memory *redis) {
    if (strcmp(what, "all") == 0) {
        size_t n = failmem_forget_all(table);
        log_info("event=starttls_memory_forget what=all entries=%zu", n);
        control_printf(out, "forgot %zu entries%s\n", n,
                       redis != NULL ? " here (the fleet's entries in Redis expire by their ttl)"
                                     : "");
        save_now();
        return 1;
    }
    struct cidr range;
    char why[256];
    if (!cidr_parse(what, &range, why, sizeof(why))) {
        control_printf(out, "%s (expected an address, a CIDR or all)\n", why);
        return 0;
    }
    /* Whatever prefix an entry was recorded with: the entries over the
     * address or range, and for a range those within it too. */
    size_t n = failmem_forget_covering(table, &range);
    if (strchr(what, '/') != NULL) {
        n += failmem_forget_within(table, &range);
    }
    char key[64];
    cidr_format(&range, key, sizeof(key));
    if (redis != NULL) {
        /* The fleet's entry: an address's key under today's prefixes, or
         * the range itself as a key. */
        struct cidr k = range;
        if (strchr(what, '/') == NULL) {
            struct net_addr addr = {0};
            struct sockaddr_in *sin = (struct sockaddr_in *)&addr.ss;
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addr.ss;
            if (range.family == AF_INET) {
                sin->sin_family = AF_INET;
                memcpy(&sin->sin_addr, range.addr, 4);
                addr.len = sizeof(*sin);
            } else {
                sin6->sin6_family = AF_INET6;
                memcpy(&sin6->sin6_addr, range.addr, 16);
                addr.len = sizeof(*sin6);
            }
            struct snapshot *snap = snapshot_acquire();
            int ok;
            key_of(snap->cfg, &addr, &k, &ok, NULL, 0);
            snapshot_release(snap);
        }
        redis_memory_forget(redis, &k);
    }
    log_info("event=starttls_memory_forget what=%s entries=%zu", key, n);
    control_printf(out, "forgot %zu entries (%s)\n", n, key);
    save_now();
    return 1;
}

int smem_control(void *arg, int argc, char **argv, struct control_out *out) {
    /* The main loop's client (a pointer to main.c's variable), or NULL. */
    struct redis_memory *redis = arg != NULL ? *(struct redis_memory **)arg : NULL;
    if (table == NULL) {
        control_printf(out, "the STARTTLS memory is not running\n");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        return memory_list(out);
    }
    if (argc == 3 && strcmp(argv[1], "forget") == 0) {
        return memory_forget(out, argv[2], redis);
    }
    control_printf(out, "usage: memory list | memory forget ADDR|CIDR|all\n");
    return 0;
}

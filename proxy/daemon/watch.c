/*
 * watch.c - [tls] watch: inotify on the certificate files' directories,
 * a debounce timer, and the caller's reload (watch.h).
 *
 * One inotify descriptor on the loop. Each watched entry is (directory,
 * name, configured file): an event in a watched directory counts when
 * its name is one of that directory's entries, or when the directory
 * itself went away (IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED: a
 * Kubernetes secret's old timestamped directory), or when the kernel's
 * queue overflowed (every file may have changed). A counting event
 * restarts the timer; when it runs out the changed files are logged and
 * |fire| called, then everything is armed again. Arming adds the new
 * watches before removing the old ones (inotify gives a directory
 * watched already the same descriptor), so no change is missed between
 * two configurations.
 */
#include "daemon/watch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/log.h"
#include "core/path_links.h"

/* What replaces a file: written in place (close after writing), renamed
 * over or away (editors, certbot's symlinks), created or deleted, its
 * mode or owner changed (a key made readable at last). */
#define WATCH_MASK                                                                    \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB | \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct watch_entry {
    int wd; /* -1: the directory could not be watched */
    char *dir;
    char *name;
    size_t file; /* the configured file (cert_watch.files) it belongs to */
};

struct cert_watch {
    struct ev_loop *loop;
    void (*fire)(void *arg);
    void *arg;
    int enabled;
    double delay;
    char **files; /* every configured certificate file, once */
    size_t nfiles;
    unsigned char *changed; /* per file: changed since the last fire */
    struct watch_entry *entries;
    size_t nentries;
    int fd; /* inotify; -1 when off */
    ev_io io;
    ev_timer timer;
};

static void free_entries(struct watch_entry *e, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(e[i].dir);
        free(e[i].name);
    }
    free(e);
}

/* disarm removes every watch and forgets a pending change. */
static void disarm(struct cert_watch *w) {
    ev_timer_stop(w->loop, &w->timer);
    if (w->fd >= 0) {
        ev_io_stop(w->loop, &w->io);
        close(w->fd);
        w->fd = -1;
    }
    free_entries(w->entries, w->nentries);
    w->entries = NULL;
    w->nentries = 0;
}

/* ---- arming ---- */

struct collect {
    struct watch_entry *entries;
    size_t n, cap;
    size_t file;
    int failed; /* out of memory */
};

static long sys_readlink(const char *path, char *buf, size_t size, void *ctx) {
    (void)ctx;
    return (long)readlink(path, buf, size);
}

static void add_entry(const char *dir, const char *name, void *arg) {
    struct collect *c = arg;
    for (size_t i = 0; i < c->n; i++) {
        if (c->entries[i].file == c->file && strcmp(c->entries[i].dir, dir) == 0 &&
            strcmp(c->entries[i].name, name) == 0) {
            return;
        }
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        struct watch_entry *e = realloc(c->entries, cap * sizeof(*e));
        if (e == NULL) {
            c->failed = 1;
            return;
        }
        c->entries = e;
        c->cap = cap;
    }
    struct watch_entry *e = &c->entries[c->n];
    e->wd = -1;
    e->file = c->file;
    e->dir = strdup(dir);
    e->name = strdup(name);
    if (e->dir == NULL || e->name == NULL) {
        free(e->dir);
        free(e->name);
        c->failed = 1;
        return;
    }
    c->n++;
}

/* same_entries: the watches are what they were (nothing to log). */
static int same_entries(const struct watch_entry *a, size_t na, const struct watch_entry *b,
                        size_t nb) {
    if (na != nb) {
        return 0;
    }
    for (size_t i = 0; i < na; i++) {
        if (a[i].wd != b[i].wd || a[i].file != b[i].file || strcmp(a[i].dir, b[i].dir) != 0 ||
            strcmp(a[i].name, b[i].name) != 0) {
            return 0;
        }
    }
    return 1;
}

static void on_events(struct ev_loop *loop, ev_io *io, int revents);

/* arm watches the directories of every file as the links point now. */
static void arm(struct cert_watch *w) {
    if (!w->enabled || w->nfiles == 0) {
        if (w->fd >= 0) {
            log_info("event=watch_off");
        }
        disarm(w);
        return;
    }
    if (w->fd < 0) {
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0) {
            log_error("event=watch_failed reason=\"inotify: %s\": certificates are reloaded "
                      "by SIGHUP only",
                      strerror(errno));
            return;
        }
        ev_io_init(&w->io, on_events, w->fd, EV_READ);
        w->io.data = w;
        ev_io_start(w->loop, &w->io);
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        strcpy(cwd, "/");
    }
    struct collect c = {0};
    for (size_t i = 0; i < w->nfiles && !c.failed; i++) {
        c.file = i;
        if (path_links_each(w->files[i], cwd, sys_readlink, NULL, add_entry, &c) < 0) {
            char shown[256];
            log_warning("event=watch_failed file=%s reason=\"path too long\"",
                        log_sanitize(shown, sizeof(shown), w->files[i], strlen(w->files[i])));
        }
    }
    if (c.failed) {
        /* The old entries name files of the old set: none at all. */
        log_error("event=watch_failed reason=\"out of memory\"");
        free_entries(c.entries, c.n);
        disarm(w);
        return;
    }
    size_t dirs = 0;
    for (size_t i = 0; i < c.n; i++) {
        struct watch_entry *e = &c.entries[i];
        size_t j = 0;
        while (j < i && strcmp(c.entries[j].dir, e->dir) != 0) {
            j++;
        }
        if (j < i) { /* the same directory: the same watch, or the same failure */
            e->wd = c.entries[j].wd;
            continue;
        }
        e->wd = inotify_add_watch(w->fd, e->dir, WATCH_MASK);
        if (e->wd >= 0) {
            dirs++;
        } else {
            char shown[256];
            log_warning("event=watch_failed directory=%s reason=\"%s\"",
                        log_sanitize(shown, sizeof(shown), e->dir, strlen(e->dir)),
                        strerror(errno));
        }
    }
    /* The old watches nobody uses any more; each descriptor once. */
    for (size_t i = 0; i < w->nentries; i++) {
        int wd = w->entries[i].wd, used = 0;
        for (size_t j = 0; j < c.n && !used; j++) {
            used = c.entries[j].wd == wd;
        }
        for (size_t j = 0; j < i && !used; j++) {
            used = w->entries[j].wd == wd;
        }
        if (wd >= 0 && !used) {
            inotify_rm_watch(w->fd, wd);
        }
    }
    int same = same_entries(w->entries, w->nentries, c.entries, c.n);
    free_entries(w->entries, w->nentries);
    w->entries = c.entries;
    w->nentries = c.n;
    if (!same) {
        log_info("event=watch_armed files=%zu directories=%zu delay=%.3fs", w->nfiles, dirs,
                 w->delay);
    }
}

/* ---- events ---- */

static void mark(struct cert_watch *w, size_t file, const char *why) {
    if (!w->changed[file]) {
        char shown[256];
        log_debug("event=watch_change file=%s what=%s",
                  log_sanitize(shown, sizeof(shown), w->files[file], strlen(w->files[file])),
                  why);
    }
    w->changed[file] = 1;
}

/* note_event marks the files |ev| may have changed; 1 when there is one. */
static int note_event(struct cert_watch *w, const struct inotify_event *ev) {
    if (ev->mask & IN_Q_OVERFLOW) {
        for (size_t i = 0; i < w->nfiles; i++) {
            mark(w, i, "overflow");
        }
        return 1;
    }
    int hit = 0;
    for (size_t i = 0; i < w->nentries; i++) {
        const struct watch_entry *e = &w->entries[i];
        if (e->wd != ev->wd) {
            continue;
        }
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
            mark(w, e->file, "directory");
            hit = 1;
        } else if (ev->len > 0 && strcmp(ev->name, e->name) == 0) {
            mark(w, e->file, "entry");
            hit = 1;
        }
    }
    return hit;
}

static void on_events(struct ev_loop *loop, ev_io *io, int revents) {
    (void)revents;
    struct cert_watch *w = io->data;
    /* Aligned for the events in it; room for at least one whole event. */
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int hit = 0;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n <= 0) {
            break; /* EAGAIN: all read */
        }
        for (char *p = buf; p + sizeof(struct inotify_event) <= buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            hit |= note_event(w, ev);
            p += sizeof(*ev) + ev->len;
        }
    }
    if (hit) {
        /* The reload comes watch_delay after the last change. */
        ev_timer_stop(loop, &w->timer);
        ev_timer_set(&w->timer, w->delay, 0.);
        ev_timer_start(loop, &w->timer);
    }
}

static void on_quiet(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)revents;
    struct cert_watch *w = t->data;
    ev_timer_stop(loop, t);
    char list[1024];
    size_t o = 0;
    int cut = 0;
    list[0] = '\0';
    for (size_t i = 0; i < w->nfiles; i++) {
        if (!w->changed[i]) {
            continue;
        }
        w->changed[i] = 0;
        char shown[256];
        log_sanitize(shown, sizeof(shown), w->files[i], strlen(w->files[i]));
        /* Room is kept for a last " ..." when the next one does not fit. */
        if (o + 1 + strlen(shown) + 4 >= sizeof(list)) {
            if (!cut) {
                o += (size_t)snprintf(list + o, sizeof(list) - o, "%s...", o ? " " : "");
                cut = 1;
            }
            continue;
        }
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? " " : "", shown);
    }
    log_info("event=watch_reload files=\"%s\"", list);
    w->fire(w->arg);
    /* The links may point elsewhere now (certbot's next archive file). */
    arm(w);
}

/* ---- the API ---- */

struct cert_watch *cert_watch_new(struct ev_loop *loop, void (*fire)(void *arg), void *arg) {
    struct cert_watch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->loop = loop;
    w->fire = fire;
    w->arg = arg;
    w->fd = -1;
    ev_timer_init(&w->timer, on_quiet, 0., 0.);
    w->timer.data = w;
    return w;
}

static void free_files(char **files, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(files[i]);
    }
    free(files);
}

/* add_file adds |path| once; 0 when out of memory. */
static int add_file(char **files, size_t *n, const char *path) {
    if (path == NULL) {
        return 1;
    }
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(files[i], path) == 0) {
            return 1;
        }
    }
    if ((files[*n] = strdup(path)) == NULL) {
        return 0;
    }
    (*n)++;
    return 1;
}

void cert_watch_configure(struct cert_watch *w, const struct config *cfg) {
    if (w == NULL) {
        return;
    }
    size_t cap = 5 * cfg->ncerts, n = 0;
    char **files = calloc(cap ? cap : 1, sizeof(char *));
    unsigned char *changed = calloc(cap ? cap : 1, 1);
    int ok = files != NULL && changed != NULL;
    for (size_t i = 0; ok && i < cfg->ncerts; i++) {
        const struct cert_config *cc = &cfg->certs[i];
        ok = add_file(files, &n, cc->cert_path) && add_file(files, &n, cc->key_path) &&
             add_file(files, &n, cc->ocsp_path) && add_file(files, &n, cc->next_key_path) &&
             add_file(files, &n, cc->next_cert_path);
    }
    if (!ok) {
        log_error("event=watch_failed reason=\"out of memory\"");
        free_files(files, n);
        free(changed);
        return;
    }
    /* A change not yet reloaded stays noted under the new set. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < w->nfiles; j++) {
            if (w->changed[j] && strcmp(files[i], w->files[j]) == 0) {
                changed[i] = 1;
            }
        }
    }
    free_files(w->files, w->nfiles);
    free(w->changed);
    w->files = files;
    w->nfiles = n;
    w->changed = changed;
    w->enabled = cfg->tls_watch;
    w->delay = cfg->tls_watch_delay;
    arm(w);
}

void cert_watch_free(struct cert_watch *w) {
    if (w == NULL) {
        return;
    }
    disarm(w);
    free_files(w->files, w->nfiles);
    free(w->changed);
    free(w);
}

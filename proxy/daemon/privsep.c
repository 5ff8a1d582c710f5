/*
 * privsep.c - the privileged parent and the unprivileged proxy.
 *
 * The two talk over a socketpair, one request at a time, child first:
 *
 *   child:  'R'                                   "the files, please"
 *   parent: u32 status (0 ok, 1 failed)
 *           failed: u32 len, the reason
 *           ok:     u32 len, the configuration text
 *                   u32 count, then per file:
 *                     u32 len, the path
 *                     u32 readable (1) or not (0)
 *                     u32 len, the bytes (readable) or the reason (not)
 *
 * Integers are in host order (both ends are this binary on this host).
 * The parent reads the configuration itself, so the child cannot choose
 * which files it is sent. A file that cannot be read is sent as its
 * reason: the child's snapshot build fails on it with the same message
 * as without privilege separation, and keeps the running snapshot.
 */
#include "daemon/privsep.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <openssl/mem.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/path_links.h"

/* A bundle is bounded: a configuration and a few files per certificate. */
#define BUNDLE_MAX (64u << 20)
#define BUNDLE_FILES_MAX 4096
/* How long the child waits for the parent's answer (it reads local
 * files: anything longer means the parent is wedged). */
#define FETCH_TIMEOUT_MS 10000

static int separated;    /* this process is the child of a privileged parent */
static int channel = -1; /* the child's end; -1 once broken */
static pid_t child_pid;

int privsep_active(void) {
    return separated;
}

int privsep_resolve(const struct config *cfg, uid_t *uid, gid_t *gid, char *err, size_t errlen) {
    struct passwd *pw = getpwnam(cfg->user);
    if (pw == NULL) {
        snprintf(err, errlen, "%s: [proxy] user %s: no such user", cfg->path, cfg->user);
        return 0;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (cfg->group != NULL) {
        struct group *gr = getgrnam(cfg->group);
        if (gr == NULL) {
            snprintf(err, errlen, "%s: [proxy] group %s: no such group", cfg->path, cfg->group);
            return 0;
        }
        *gid = gr->gr_gid;
    }
    if (*uid == 0) {
        snprintf(err, errlen, "%s: [proxy] user %s is root: name an unprivileged user (or "
                              "leave user out and set allow_root = yes)", cfg->path, cfg->user);
        return 0;
    }
    return 1;
}

/* ---- framing ---- */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return 0;
        }
        c += w;
        n -= (size_t)w;
    }
    return 1;
}

static int write_u32(int fd, uint32_t v) {
    return write_all(fd, &v, sizeof(v));
}

static int write_blob(int fd, const void *p, size_t n) {
    return n <= BUNDLE_MAX && write_u32(fd, (uint32_t)n) && write_all(fd, p, n);
}

/* read_all reads |n| bytes, each wait bounded by FETCH_TIMEOUT_MS. */
static int read_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, FETCH_TIMEOUT_MS);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return 0;
        }
        ssize_t got = read(fd, c, n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return 0;
        }
        c += got;
        n -= (size_t)got;
    }
    return 1;
}

static int read_u32(int fd, uint32_t *v) {
    return read_all(fd, v, sizeof(*v));
}

/* read_blob reads a length and that many bytes, NUL-terminated. */
static char *read_blob(int fd, size_t *len) {
    uint32_t n;
    if (!read_u32(fd, &n) || n > BUNDLE_MAX) {
        return NULL;
    }
    char *b = malloc((size_t)n + 1);
    if (b == NULL || !read_all(fd, b, n)) {
        free(b);
        return NULL;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* ---- the parent ---- */

static const char *parent_config_path;
static struct ev_loop *parent_loop;
static privsep_parent_hook *parent_hook;

static void parent_fire(void *arg) {
    (void)arg;
    /* The child asks for the files, as on SIGHUP. */
    if (kill(child_pid, SIGHUP) != 0) {
        log_error("event=privsep_signal_failed signal=%d child=%ld reason=\"%s\"", SIGHUP,
                  (long)child_pid, strerror(errno));
    }
}

static uid_t child_uid;
static gid_t child_gid;

/* writable_by_child: could the proxy's user change what |st| is or
 * holds? Owned by it, or writable by its group or by anyone (a sticky
 * directory protects entries owned by others, so it passes). */
static int writable_by_child(const struct stat *st) {
    if (st->st_uid == child_uid) {
        return 1;
    }
    if ((st->st_mode & S_IWGRP) && st->st_gid == child_gid) {
        return 1;
    }
    return (st->st_mode & S_IWOTH) && !(S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX));
}

/* parent_read reads a file of the configuration as root, refusing what
 * the proxy's user could have redirected: the file and every directory
 * on its real path (symbolic links resolved, as certbot's live/ ->
 * archive/ links are) must be out of the user's reach, and the file
 * must be a regular file (a FIFO would block the parent). Otherwise a
 * compromised proxy could plant a link to any file in a path it can
 * write and have root read it. */
/* out_of_reach: neither |path| nor a directory above it (all of them
 * lstat'ed, none followed) is the user's to change. */
static int out_of_reach(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf) || buf[0] != '/') {
        return 0;
    }
    for (char *slash = buf;; slash = strchr(slash + 1, '/')) {
        char saved = 0;
        if (slash != NULL) {
            saved = slash[1];
            slash[1] = '\0';
        }
        struct stat st;
        int bad = lstat(buf, &st) != 0 || writable_by_child(&st);
        if (slash != NULL) {
            slash[1] = saved;
        }
        if (bad) {
            return 0;
        }
        if (slash == NULL) {
            return 1;
        }
    }
}

static long parent_readlink(const char *path, char *buf, size_t size, void *ctx) {
    (void)ctx;
    ssize_t n = readlink(path, buf, size);
    return n < 0 ? -1 : (long)n;
}

/* check_entry: one directory entry the path depends on (every link on
 * the way, and the file). */
static void check_entry(const char *dir, const char *name, void *arg) {
    int *ok = arg;
    char full[PATH_MAX];
    if (snprintf(full, sizeof(full), "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, name) >=
            (int)sizeof(full) ||
        !out_of_reach(full)) {
        *ok = 0;
    }
}

static int parent_read(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen) {
    char cwd[PATH_MAX], real[PATH_MAX];
    int ok = 1;
    if (getcwd(cwd, sizeof(cwd)) == NULL ||
        path_links_each(path, cwd, parent_readlink, NULL, check_entry, &ok) < 0) {
        ok = 0;
    }
    if (realpath(path, real) == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return 0;
    }
    if (!ok || !out_of_reach(real)) {
        snprintf(err, errlen, "cannot open %s: the privileged parent reads no file that the "
                              "proxy's user could redirect (the file, a link on the way or a "
                              "directory above them is writable by it)", path);
        return 0;
    }
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 fd < 0 ? strerror(errno) : "not a regular file of at most 1 MiB");
        if (fd >= 0) {
            close(fd);
        }
        return 0;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (buf != NULL && n < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        n += (size_t)got;
    }
    close(fd);
    if (buf == NULL || n != (size_t)st.st_size) {
        snprintf(err, errlen, "cannot read %s", path);
        free(buf);
        return 0;
    }
    *out = buf;
    *len = n;
    return 1;
}

void privsep_set_parent_hook(privsep_parent_hook *hook) {
    parent_hook = hook;
}

/* parent_config reads and parses the configuration as root; *text gets
 * the file's text (the caller frees both), or NULL with |err| set. */
static struct config *parent_config(char **text, char *err, size_t errlen) {
    *text = parent_config_path != NULL
                ? config_read_file(parent_config_path, 1u << 20, err, errlen)
                : strdup(default_config_text);
    if (*text == NULL) {
        if (parent_config_path == NULL) {
            snprintf(err, errlen, "out of memory");
        }
        return NULL;
    }
    struct config *cfg =
        config_parse_env(parent_config_path ? parent_config_path : "(embedded default)",
                         *text, environ, err, errlen);
    if (cfg != NULL && parent_hook != NULL) {
        parent_hook(parent_loop, cfg, parent_fire, NULL);
    }
    return cfg;
}

/* send_files answers one request: the configuration as the parent reads
 * it now, and every file it names for the TLS store. */
static int send_files(int fd) {
    char err[512];
    char *text;
    struct config *cfg = parent_config(&text, err, sizeof(err));
    if (cfg == NULL) {
        /* The reason may quote a file the parent read as root (a CIDR
         * list): it goes to the parent's log, not to the child. */
        log_error("event=privsep_config_failed reason=\"%s\"", err);
        free(text);
        static const char generic[] = "the privileged parent cannot read the configuration "
                                      "(its log, on stderr, says why)";
        return write_u32(fd, 1) && write_blob(fd, generic, strlen(generic));
    }
    const char *paths[BUNDLE_FILES_MAX];
    size_t n = 0;
    for (size_t i = 0; i < cfg->ncerts; i++) {
        const struct cert_config *cc = &cfg->certs[i];
        const char *mine[] = {cc->cert_path, cc->key_path, cc->ocsp_path, cc->next_key_path,
                              cc->next_cert_path};
        for (size_t j = 0; j < sizeof(mine) / sizeof(mine[0]); j++) {
            if (mine[j] != NULL && n < BUNDLE_FILES_MAX) {
                paths[n++] = mine[j];
            }
        }
    }
    int ok = write_u32(fd, 0) && write_blob(fd, text, strlen(text)) && write_u32(fd, (uint32_t)n);
    for (size_t i = 0; ok && i < n; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        char why[400];
        int readable = parent_read(paths[i], &data, &len, why, sizeof(why));
        ok = write_blob(fd, paths[i], strlen(paths[i])) && write_u32(fd, (uint32_t)readable) &&
             (readable ? write_blob(fd, data, len) : write_blob(fd, why, strlen(why)));
        if (data != NULL) {
            OPENSSL_cleanse(data, len);
            free(data);
        }
    }
    log_info("event=privsep_files_sent files=%zu", n);
    config_free(cfg);
    free(text);
    return ok;
}

static void on_request(struct ev_loop *loop, ev_io *w, int revents) {
    (void)revents;
    char req;
    ssize_t n = read(w->fd, &req, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n > 0 && req != 'R') {
        log_error("event=privsep_bad_request byte=%d: the proxy is stopped", (unsigned char)req);
        kill(child_pid, SIGKILL);
    }
    if (n <= 0 || req != 'R' || !send_files(w->fd)) {
        /* The child is gone, talks nonsense or does not read (the send
         * timeout): stop serving it; the child watcher ends the parent. */
        ev_io_stop(loop, w);
    }
}

static void on_parent_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)loop;
    (void)revents;
    if (kill(child_pid, w->signum) != 0) {
        log_error("event=privsep_signal_failed signal=%d child=%ld reason=\"%s\"", w->signum,
                  (long)child_pid, strerror(errno));
    }
}

static int child_status;

static void on_child(struct ev_loop *loop, ev_child *w, int revents) {
    (void)revents;
    child_status = w->rstatus;
    ev_break(loop, EVBREAK_ALL);
}

static void run_parent(int fd) {
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    parent_loop = loop;
    config_set_resolver(config_resolve_nothing);
    /* A child that asks and does not read cannot wedge the parent. */
    struct timeval tv = {.tv_sec = FETCH_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ev_io io;
    ev_io_init(&io, on_request, fd, EV_READ);
    ev_io_start(loop, &io);
    ev_child cw;
    ev_child_init(&cw, on_child, child_pid, 0);
    ev_child_start(loop, &cw);
    /* A child that ended before the loop caught SIGCHLD is not seen by
     * the watcher: look once by hand. */
    int early;
    if (waitpid(child_pid, &early, WNOHANG) == child_pid) {
        _exit(WIFEXITED(early) ? WEXITSTATUS(early) : 128 + WTERMSIG(early));
    }
    static const int forwarded[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    ev_signal sig[sizeof(forwarded) / sizeof(forwarded[0])];
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
        ev_signal_init(&sig[i], on_parent_signal, forwarded[i]);
        ev_signal_start(loop, &sig[i]);
    }
    if (parent_hook != NULL) {
        char err[512], *text;
        struct config *cfg = parent_config(&text, err, sizeof(err));
        if (cfg == NULL) {
            log_error("event=privsep_config_failed reason=\"%s\"", err);
        }
        config_free(cfg);
        free(text);
    }
    ev_run(loop, 0);
    if (WIFEXITED(child_status)) {
        _exit(WEXITSTATUS(child_status));
    }
    _exit(WIFSIGNALED(child_status) ? 128 + WTERMSIG(child_status) : 1);
}

/* ---- the child ---- */

static int drop_to(const char *user, uid_t uid, gid_t gid, char *err, size_t errlen) {
    /* The user's supplementary groups come along (a backend's unix
     * socket may be reachable through one, e.g. postfix's). */
    if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        snprintf(err, errlen, "cannot drop privileges to uid %u gid %u: %s", (unsigned)uid,
                 (unsigned)gid, strerror(errno));
        return 0;
    }
    if (setuid(0) == 0 || geteuid() != uid || getegid() != gid) {
        snprintf(err, errlen, "privileges were not dropped for good (uid %u)", (unsigned)uid);
        return 0;
    }
    /* No way back through a setuid program, and no core dump or ptrace
     * by the same uid: the process holds private keys. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "prctl: %s", strerror(errno));
        return 0;
    }
    return 1;
}

int privsep_start(const char *config_path, const char *user, uid_t uid, gid_t gid,
                  void (*parent_cleanup)(void *), void *arg, char *err, size_t errlen) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return 0;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    if (pid > 0) {
        close(sv[1]);
        child_pid = pid;
        child_uid = uid;
        child_gid = gid;
        parent_config_path = config_path;
        if (parent_cleanup != NULL) {
            parent_cleanup(arg);
        }
        log_info("event=privsep_parent pid=%ld child=%ld", (long)parent, (long)pid);
        run_parent(sv[0]); /* never returns */
    }
    close(sv[0]);
    channel = sv[1];
    separated = 1;
    if (!drop_to(user, uid, gid, err, errlen)) {
        return 0;
    }
    /* Set after the drop (a credential change clears it): the proxy stops
     * with its parent instead of lingering without one. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
        snprintf(err, errlen, "the privileged parent is gone");
        return 0;
    }
    return 1;
}

/* ---- the bundle ---- */

struct privsep_file {
    char *path;
    char *data; /* the bytes, or the reason it was not read */
    size_t len;
    int readable;
};

struct privsep_bundle {
    char *config;
    struct privsep_file *files;
    size_t nfiles;
};

void privsep_bundle_free(struct privsep_bundle *b) {
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->nfiles; i++) {
        free(b->files[i].path);
        if (b->files[i].data != NULL) {
            OPENSSL_cleanse(b->files[i].data, b->files[i].len);
        }
        free(b->files[i].data);
    }
    free(b->files);
    free(b->config);
    free(b);
}

const char *privsep_bundle_config(const struct privsep_bundle *b) {
    return b->config;
}

struct privsep_bundle *privsep_fetch(char *err, size_t errlen) {
    if (channel < 0) {
        snprintf(err, errlen, "the privileged parent no longer answers: restart the proxy");
        return NULL;
    }
    struct privsep_bundle *b = calloc(1, sizeof(*b));
    uint32_t status, count;
    size_t len;
    errno = 0;
    if (b == NULL || !write_all(channel, "R", 1) || !read_u32(channel, &status)) {
        goto broken;
    }
    if (status != 0) {
        char *why = read_blob(channel, &len);
        snprintf(err, errlen, "%s", why ? why : "the privileged parent failed");
        free(why);
        privsep_bundle_free(b);
        return NULL;
    }
    if ((b->config = read_blob(channel, &len)) == NULL || !read_u32(channel, &count) ||
        count > BUNDLE_FILES_MAX) {
        goto broken;
    }
    b->files = calloc(count ? count : 1, sizeof(*b->files));
    if (b->files == NULL) {
        goto broken;
    }
    for (uint32_t i = 0; i < count; i++) {
        struct privsep_file *f = &b->files[i];
        uint32_t readable;
        b->nfiles = i + 1;
        if ((f->path = read_blob(channel, &len)) == NULL || !read_u32(channel, &readable) ||
            (f->data = read_blob(channel, &f->len)) == NULL) {
            goto broken;
        }
        f->readable = readable == 1;
    }
    return b;
broken:
    snprintf(err, errlen, "no answer from the privileged parent (%s)",
             errno ? strerror(errno) : "closed or timed out");
    privsep_bundle_free(b);
    /* The stream's position is lost: a half-read answer cannot be
     * resynchronised, so no further request is made (reloads fail with
     * this message; a restart mends it). */
    close(channel);
    channel = -1;
    return NULL;
}

int privsep_bundle_reader(void *arg, const char *path, uint8_t **out, size_t *len, char *err,
                          size_t errlen) {
    const struct privsep_bundle *b = arg;
    for (size_t i = 0; i < b->nfiles; i++) {
        const struct privsep_file *f = &b->files[i];
        if (strcmp(f->path, path) != 0) {
            continue;
        }
        if (!f->readable) {
            snprintf(err, errlen, "%s", f->data);
            return 0;
        }
        *out = malloc(f->len ? f->len : 1);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            return 0;
        }
        memcpy(*out, f->data, f->len);
        *len = f->len;
        return 1;
    }
    snprintf(err, errlen, "cannot open %s: not a file of the configuration the privileged "
                          "parent read", path);
    return 0;
}

/*
 * control.c - the control socket: the server the main thread runs on its
 * loop (control_start) and the client of the command line
 * (control_client). The protocol is in control.h.
 *
 * A connection goes through two phases: reading its one request line
 * (bounded by CONTROL_LINE_MAX and CONTROL_READ_TIMEOUT), then writing
 * the answer without blocking (one watcher, switched to EV_WRITE), after
 * which it is closed. Connections live in a fixed table of
 * CONTROL_CONNS_MAX slots inside struct control.
 */
#include "daemon/control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"

#define CONTROL_BACKLOG 16
/* Accepts per readiness event, and how long accepting pauses when
 * descriptors or memory run out (the listening socket would otherwise
 * stay readable and the loop spin). */
#define CONTROL_ACCEPT_BURST 16
#define CONTROL_ACCEPT_PAUSE 0.5
/* A handler's failure reason is cut to this many octets. */
#define CONTROL_REASON_MAX 1024
/* The client's bound on the first line of an answer. */
#define CONTROL_STATUS_MAX 65536
/* Most words one request line can hold, plus argv's NULL. */
#define CONTROL_ARGV_MAX (CONTROL_LINE_MAX / 2 + 1)

struct control;

struct control_conn {
    struct control *owner;
    int fd; /* -1: the slot is free */
    int writing;
    unsigned uid;
    ev_io io;
    ev_timer timer;
    size_t len; /* request octets read */
    char line[CONTROL_LINE_MAX];
    struct buffer head;     /* "ok\n" or "error ...\n" */
    struct control_out out; /* the body after "ok" */
};

struct control {
    struct ev_loop *loop;
    char *path;
    int fd;
    dev_t dev; /* the socket file bind made: only it is unlinked */
    ino_t ino;
    ev_io accept_io;
    ev_timer accept_pause;
    struct control_command *commands;
    size_t ncommands;
    size_t nconns;
    struct control_conn conns[CONTROL_CONNS_MAX];
};

/* ---- the answer a handler builds ---- */

int control_printf(struct control_out *o, const char *fmt, ...) {
    if (o->full || o->nomem) {
        return 0;
    }
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n > CONTROL_OUT_MAX - o->body.len) {
        o->full = 1;
        return 0;
    }
    if ((size_t)n < sizeof(small)) {
        if (!buffer_append(&o->body, small, (size_t)n)) {
            o->nomem = 1;
            return 0;
        }
        return 1;
    }
    char *dst = buffer_reserve(&o->body, (size_t)n + 1);
    if (dst == NULL) {
        o->nomem = 1;
        return 0;
    }
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buffer_commit(&o->body, (size_t)n);
    return 1;
}

/* ---- the server ---- */

static int is_blank(unsigned char c) {
    return c == ' ' || c == '\t';
}

static int is_graphic(unsigned char c) {
    return c >= 0x21 && c <= 0x7e;
}

/* drain discards what the peer sent beyond its request: closing a unix
 * socket with unread bytes makes the peer's next read fail with
 * ECONNRESET instead of seeing EOF. */
static void drain(int fd) {
    char sink[4096];
    for (int i = 0; i < 16; i++) {
        if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0) {
            return;
        }
    }
}

/* refuse answers a connection that is not served with one error line,
 * best effort on a fresh socket, and closes it. */
static void refuse(int fd, const char *line) {
    ssize_t ignored = send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)ignored;
    drain(fd);
    close(fd);
}

static void conn_close(struct control_conn *k) {
    struct control *c = k->owner;
    ev_io_stop(c->loop, &k->io);
    ev_timer_stop(c->loop, &k->timer);
    drain(k->fd);
    close(k->fd);
    k->fd = -1;
    k->writing = 0;
    k->len = 0;
    buffer_free(&k->head);
    buffer_free(&k->out.body);
    k->out.full = k->out.nomem = 0;
    c->nconns--;
}

/* conn_write writes what is left of the answer; closes the connection
 * when all of it is out, when the peer has gone, or on an error. */
static void conn_write(struct control_conn *k) {
    struct control *c = k->owner;
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        if (k->head.len > 0) {
            iov[n].iov_base = (void *)buffer_head(&k->head);
            iov[n++].iov_len = k->head.len;
        }
        if (k->out.body.len > 0) {
            iov[n].iov_base = (void *)buffer_head(&k->out.body);
            iov[n++].iov_len = k->out.body.len;
        }
        if (n == 0) {
            conn_close(k);
            return;
        }
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(k->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return; /* the EV_WRITE watcher calls again */
            }
            log_debug("event=control_write_failed error=\"%s\"", strerror(errno));
            conn_close(k);
            return;
        }
        size_t done = (size_t)w;
        size_t from_head = done < k->head.len ? done : k->head.len;
        buffer_consume(&k->head, from_head);
        buffer_consume(&k->out.body, done - from_head);
        ev_timer_again(c->loop, &k->timer); /* progress */
    }
}

/* start_writing turns the connection around: no more reading, the
 * watcher waits for writability, and the timer counts from the last
 * progress. */
static void start_writing(struct control_conn *k) {
    struct control *c = k->owner;
    k->writing = 1;
    ev_io_stop(c->loop, &k->io);
    ev_io_set(&k->io, k->fd, EV_WRITE);
    ev_io_start(c->loop, &k->io);
    ev_timer_stop(c->loop, &k->timer);
    k->timer.repeat = CONTROL_WRITE_TIMEOUT;
    ev_timer_again(c->loop, &k->timer);
    conn_write(k);
}

/* log_result writes the command's event line. |command| and |args| are
 * request text (printable ASCII); NULL when there was none. */
static void log_result(const struct control_conn *k, const char *command, const char *args,
                       const char *reason) {
    char cmd[64], a[CONTROL_LINE_MAX], why[256];
    if (command == NULL) {
        command = "-";
    }
    log_sanitize(cmd, sizeof(cmd), command, strlen(command));
    size_t n = 0;
    for (const char *p = args ? args : ""; *p != '\0' && n + 1 < sizeof(a); p++) {
        a[n++] = (*p == '"' || *p == '\\') ? '?' : *p;
    }
    a[n] = '\0';
    if (reason == NULL) {
        log_info("event=control command=%s args=\"%s\" result=ok uid=%u", cmd, a, k->uid);
        return;
    }
    n = 0;
    for (const char *p = reason; *p != '\0' && n + 1 < sizeof(why); p++) {
        unsigned char ch = (unsigned char)*p;
        why[n++] = (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    why[n] = '\0';
    log_info("event=control command=%s args=\"%s\" result=error reason=\"%s\" uid=%u", cmd, a,
             why, k->uid);
}

/* answer_error makes the answer the line "error |reason|" and sends it. */
static void answer_error(struct control_conn *k, const char *command, const char *args,
                         const char *reason) {
    log_result(k, command, args, reason);
    buffer_free(&k->out.body);
    buffer_free(&k->head);
    if (!buffer_append_str(&k->head, "error ") || !buffer_append_str(&k->head, reason) ||
        !buffer_append_str(&k->head, "\n")) {
        conn_close(k);
        return;
    }
    start_writing(k);
}

/* append_commands appends each command's usage (its name when it has
 * none) to |b|, separated by "; ". */
static int append_commands(struct buffer *b, const struct control *c) {
    for (size_t i = 0; i < c->ncommands; i++) {
        const struct control_command *cmd = &c->commands[i];
        const char *text = cmd->usage != NULL && cmd->usage[0] != '\0' ? cmd->usage : cmd->name;
        if ((i > 0 && !buffer_append_str(b, "; ")) || !buffer_append_str(b, text)) {
            return 0;
        }
    }
    return 1;
}

/* answer_with_commands answers "error |before|(commands: ...)". */
static void answer_with_commands(struct control_conn *k, const char *command, const char *args,
                                 const char *log_reason, const char *before) {
    log_result(k, command, args, log_reason);
    struct buffer *h = &k->head;
    buffer_free(h);
    if (!buffer_append_str(h, "error ") || !buffer_append_str(h, before) ||
        !buffer_append_str(h, "(commands: ") || !append_commands(h, k->owner) ||
        !buffer_append_str(h, ")\n")) {
        conn_close(k);
        return;
    }
    start_writing(k);
}

static const struct control_command *find_command(const struct control *c, const char *name) {
    for (size_t i = 0; i < c->ncommands; i++) {
        if (strcmp(c->commands[i].name, name) == 0) {
            return &c->commands[i];
        }
    }
    return NULL;
}

/* run_handler calls the command and turns what it returned into the
 * answer. */
static void run_handler(struct control_conn *k, const struct control_command *cmd, int argc,
                        char **argv, const char *args) {
    struct control_out *o = &k->out;
    int ok = cmd->fn(cmd->arg, argc, argv, o);
    if (o->full) {
        answer_error(k, argv[0], args, "answer too long (more than 64 MiB)");
        return;
    }
    if (o->nomem) {
        answer_error(k, argv[0], args, "out of memory");
        return;
    }
    if (!ok) {
        char reason[CONTROL_REASON_MAX + 1];
        size_t n = 0;
        const char *p = o->body.len > 0 ? buffer_head(&o->body) : "";
        for (size_t i = 0; i < o->body.len && p[i] != '\n' && n < CONTROL_REASON_MAX; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch == '\r' && (i + 1 == o->body.len || p[i + 1] == '\n')) {
                continue;
            }
            reason[n++] = (ch == '\t' || (ch >= 0x20 && ch != 0x7f)) ? (char)ch : '?';
        }
        reason[n] = '\0';
        answer_error(k, argv[0], args, n > 0 ? reason : "command failed");
        return;
    }
    if (o->body.len > 0 && buffer_head(&o->body)[o->body.len - 1] != '\n' &&
        !buffer_append(&o->body, "\n", 1)) {
        answer_error(k, argv[0], args, "out of memory");
        return;
    }
    log_result(k, argv[0], args, NULL);
    if (!buffer_append_str(&k->head, "ok\n")) {
        conn_close(k);
        return;
    }
    start_writing(k);
}

/* run_request checks and splits the request line (|len| octets at
 * k->line, the "\n" excluded) and answers it. */
static void run_request(struct control_conn *k, size_t len) {
    char *s = k->line;
    if (len > 0 && s[len - 1] == '\r') {
        len--;
    }
    s[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (!is_blank((unsigned char)s[i]) && !is_graphic((unsigned char)s[i])) {
            answer_error(k, NULL, NULL, "request is not printable ASCII");
            return;
        }
    }
    /* The arguments as logged: the words after the first, one SP apart. */
    char args[CONTROL_LINE_MAX];
    size_t alen = 0;
    char *argv[CONTROL_ARGV_MAX];
    int argc = 0;
    char *p = s;
    for (;;) {
        while (is_blank((unsigned char)*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *word = p;
        while (*p != '\0' && !is_blank((unsigned char)*p)) {
            p++;
        }
        int last = *p == '\0';
        *p = '\0';
        if (argc > 0) {
            size_t wl = strlen(word);
            if (alen > 0) {
                args[alen++] = ' ';
            }
            memcpy(args + alen, word, wl);
            alen += wl;
        }
        argv[argc++] = word;
        if (last) {
            break;
        }
        p++;
    }
    args[alen] = '\0';
    argv[argc] = NULL;
    if (argc == 0) {
        answer_with_commands(k, NULL, NULL, "empty request", "empty request ");
        return;
    }
    const struct control_command *cmd = find_command(k->owner, argv[0]);
    if (cmd == NULL) {
        char before[CONTROL_LINE_MAX + 32];
        snprintf(before, sizeof(before), "unknown command \"%s\" ", argv[0]);
        answer_with_commands(k, argv[0], args, "unknown command", before);
        return;
    }
    run_handler(k, cmd, argc, argv, args);
}

static void conn_read(struct control_conn *k) {
    for (;;) {
        ssize_t n = recv(k->fd, k->line + k->len, sizeof(k->line) - k->len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log_debug("event=control_read_failed error=\"%s\"", strerror(errno));
                conn_close(k);
            }
            return;
        }
        if (n == 0) {
            if (k->len == 0) {
                conn_close(k); /* connected and left: a probe, not a command */
            } else {
                answer_error(k, NULL, NULL, "request ends without a newline");
            }
            return;
        }
        char *nl = memchr(k->line + k->len, '\n', (size_t)n);
        k->len += (size_t)n;
        if (nl != NULL) {
            run_request(k, (size_t)(nl - k->line));
            return;
        }
        if (k->len == sizeof(k->line)) {
            answer_error(k, NULL, NULL, "request too long");
            return;
        }
    }
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop;
    (void)revents;
    struct control_conn *k = w->data;
    if (k->writing) {
        conn_write(k);
    } else {
        conn_read(k);
    }
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    struct control_conn *k = t->data;
    if (k->writing) {
        log_warning("event=control_write_timeout seconds=%.0f uid=%u", CONTROL_WRITE_TIMEOUT,
                    k->uid);
        conn_close(k);
        return;
    }
    log_result(k, NULL, NULL, "request timed out");
    static const char line[] = "error request timed out\n";
    ssize_t ignored = send(k->fd, line, sizeof(line) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)ignored;
    conn_close(k);
}

static void set_accepting(struct control *c, int on) {
    if (on) {
        ev_io_start(c->loop, &c->accept_io);
    } else {
        ev_io_stop(c->loop, &c->accept_io);
    }
}

static void on_accept_resume(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    set_accepting(t->data, 1);
}

static struct control_conn *free_slot(struct control *c) {
    for (size_t i = 0; i < CONTROL_CONNS_MAX; i++) {
        if (c->conns[i].fd < 0) {
            return &c->conns[i];
        }
    }
    return NULL;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
    (void)revents;
    struct control *c = w->data;
    for (int i = 0; i < CONTROL_ACCEPT_BURST; i++) {
        int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warning("event=control_accept_paused error=\"%s\" seconds=%.1f",
                            strerror(errno), CONTROL_ACCEPT_PAUSE);
                set_accepting(c, 0);
                ev_timer_set(&c->accept_pause, CONTROL_ACCEPT_PAUSE, 0.);
                ev_timer_start(loop, &c->accept_pause);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                log_warning("event=control_accept_failed error=\"%s\"", strerror(errno));
            }
            return;
        }
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
            clen != sizeof(cred)) {
            log_warning("event=control_refused reason=\"no peer credentials\"");
            refuse(fd, "error permission denied\n");
            continue;
        }
        if (cred.uid != 0 && cred.uid != geteuid()) {
            log_warning("event=control_refused uid=%u pid=%ld", (unsigned)cred.uid,
                        (long)cred.pid);
            refuse(fd, "error permission denied\n");
            continue;
        }
        struct control_conn *k = free_slot(c);
        if (k == NULL) {
            char line[64];
            snprintf(line, sizeof(line), "error busy (%d control connections)\n",
                     CONTROL_CONNS_MAX);
            log_warning("event=control_busy limit=%d uid=%u", CONTROL_CONNS_MAX,
                        (unsigned)cred.uid);
            refuse(fd, line);
            continue;
        }
        k->owner = c;
        k->fd = fd;
        k->writing = 0;
        k->uid = (unsigned)cred.uid;
        k->len = 0;
        ev_io_init(&k->io, on_conn_io, fd, EV_READ);
        k->io.data = k;
        ev_timer_init(&k->timer, on_conn_timeout, CONTROL_READ_TIMEOUT, 0.);
        k->timer.data = k;
        ev_io_start(loop, &k->io);
        ev_timer_start(loop, &k->timer);
        c->nconns++;
    }
}

/* fill_address puts |path| into |sun|. Returns 1, or 0 with |err| set. */
static int fill_address(struct sockaddr_un *sun, const char *path, char *err, size_t errlen) {
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0) {
        snprintf(err, errlen, "control socket path is empty");
        return 0;
    }
    if (n >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "control socket path %s is too long (%zu octets; at most %zu)",
                 path, n, sizeof(sun->sun_path) - 1);
        return 0;
    }
    memcpy(sun->sun_path, path, n + 1);
    return 1;
}

/* clear_stale makes room for the socket: nothing at |path|, or a socket
 * nobody listens on (removed). Returns 1, or 0 with |err| set. */
static int clear_stale(const char *path, const struct sockaddr_un *sun, char *err,
                       size_t errlen) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            return 1;
        }
        snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
        return 0;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "control socket %s exists and is not a socket; not replacing it",
                 path);
        return 0;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control socket %s: socket: %s", path, strerror(errno));
        return 0;
    }
    int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int e = errno;
    close(fd);
    /* EAGAIN: a full backlog, which is someone listening. */
    if (r == 0 || e == EAGAIN || e == EINPROGRESS) {
        snprintf(err, errlen, "control socket %s is in use by another process", path);
        return 0;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "control socket %s: connect: %s", path, strerror(e));
        return 0;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "control socket %s: removing the stale socket: %s", path,
                 strerror(errno));
        return 0;
    }
    char shown[256];
    log_info("event=control_stale_removed path=%s",
             log_sanitize(shown, sizeof(shown), path, strlen(path)));
    return 1;
}

/* open_socket binds and listens on |path| with mode 0600. Returns the fd
 * and the file's identity, or -1 with |err| set. */
static int open_socket(const char *path, const struct sockaddr_un *sun, struct stat *st,
                       char *err, size_t errlen) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control socket %s: socket: %s", path, strerror(errno));
        return -1;
    }
    /* umask is the process's: the other threads create no files. */
    mode_t old = umask(077);
    int r = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
    int e = errno;
    umask(old);
    if (r != 0) {
        snprintf(err, errlen, "control socket %s: bind: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    const char *step = NULL;
    if (chmod(path, 0600) != 0) {
        step = "chmod";
    } else if (lstat(path, st) != 0) {
        step = "stat";
    } else if (listen(fd, CONTROL_BACKLOG) != 0) {
        step = "listen";
    }
    if (step != NULL) {
        snprintf(err, errlen, "control socket %s: %s: %s", path, step, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

struct control *control_start(struct ev_loop *loop, const char *path,
                              const struct control_command *commands, size_t ncommands,
                              char *err, size_t errlen) {
    struct sockaddr_un sun;
    if (!fill_address(&sun, path, err, errlen)) {
        return NULL;
    }
    for (size_t i = 0; i < ncommands; i++) {
        if (commands[i].name == NULL || commands[i].name[0] == '\0' || commands[i].fn == NULL) {
            snprintf(err, errlen, "control command %zu has no name or no handler", i);
            return NULL;
        }
    }
    struct control *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->path = strdup(path);
        c->commands = calloc(ncommands ? ncommands : 1, sizeof(*commands));
    }
    if (c == NULL || c->path == NULL || c->commands == NULL) {
        snprintf(err, errlen, "out of memory");
        if (c != NULL) {
            free(c->path);
            free(c->commands);
            free(c);
        }
        return NULL;
    }
    if (ncommands > 0) {
        memcpy(c->commands, commands, ncommands * sizeof(*commands));
    }
    c->ncommands = ncommands;
    c->loop = loop;
    struct stat st;
    c->fd = -1;
    if (clear_stale(path, &sun, err, errlen)) {
        c->fd = open_socket(path, &sun, &st, err, errlen);
    }
    if (c->fd < 0) {
        free(c->path);
        free(c->commands);
        free(c);
        return NULL;
    }
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    for (size_t i = 0; i < CONTROL_CONNS_MAX; i++) {
        c->conns[i].fd = -1;
        c->conns[i].owner = c;
    }
    ev_io_init(&c->accept_io, on_accept, c->fd, EV_READ);
    c->accept_io.data = c;
    ev_timer_init(&c->accept_pause, on_accept_resume, CONTROL_ACCEPT_PAUSE, 0.);
    c->accept_pause.data = c;
    ev_io_start(loop, &c->accept_io);
    return c;
}

void control_stop(struct control *c) {
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < CONTROL_CONNS_MAX; i++) {
        if (c->conns[i].fd >= 0) {
            conn_close(&c->conns[i]);
        }
    }
    ev_io_stop(c->loop, &c->accept_io);
    ev_timer_stop(c->loop, &c->accept_pause);
    close(c->fd);
    /* Unlink only our own socket: a newer instance may have replaced it. */
    struct stat st;
    if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == c->dev &&
        st.st_ino == c->ino) {
        unlink(c->path);
    }
    free(c->path);
    free(c->commands);
    free(c);
}

/* ---- the client ---- */

/* build_request joins |argv| into one line in |line|. Returns its length,
 * or 0 after saying why on |errout|. */
static size_t build_request(char *line, int argc, char **argv, FILE *errout) {
    if (argc < 1) {
        fprintf(errout, "smtp-tls-proxy: no control command given\n");
        return 0;
    }
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]);
        if (l == 0) {
            fprintf(errout, "smtp-tls-proxy: argument %d of the control command is empty\n",
                    i + 1);
            return 0;
        }
        for (size_t j = 0; j < l; j++) {
            if (!is_graphic((unsigned char)argv[i][j])) {
                fprintf(errout,
                        "smtp-tls-proxy: argument %d of the control command holds a blank "
                        "or a byte that is not printable ASCII\n",
                        i + 1);
                return 0;
            }
        }
        if (n + (i > 0) + l + 1 > CONTROL_LINE_MAX) {
            fprintf(errout, "smtp-tls-proxy: control command too long (at most %d octets)\n",
                    CONTROL_LINE_MAX - 1);
            return 0;
        }
        if (i > 0) {
            line[n++] = ' ';
        }
        memcpy(line + n, argv[i], l);
        n += l;
    }
    line[n++] = '\n';
    return n;
}

/* client_connect connects to |path| within the timeout. Returns the fd,
 * or -1 after saying why on |errout|. */
static int client_connect(const char *path, FILE *errout) {
    static const char hint[] = "the proxy must be running with [proxy] control_socket";
    char err[256];
    struct sockaddr_un sun;
    if (!fill_address(&sun, path, err, sizeof(err))) {
        fprintf(errout, "smtp-tls-proxy: %s\n", err);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(errout, "smtp-tls-proxy: socket: %s\n", strerror(errno));
        return -1;
    }
    /* Every blocking call, connect included (a full backlog), gives up
     * after the timeout without progress. */
    struct timeval tv = {.tv_sec = CONTROL_CLIENT_TIMEOUT};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int r;
    do {
        r = connect(fd, (const struct sockaddr *)&sun, sizeof(sun));
    } while (r != 0 && errno == EINTR);
    if (r != 0 && errno != EISCONN) {
        const char *why = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)
                              ? "timed out waiting for the proxy to accept"
                              : strerror(errno);
        fprintf(errout, "smtp-tls-proxy: cannot connect to control socket %s: %s (%s = %s)\n",
                path, why, hint, path);
        close(fd);
        return -1;
    }
    return fd;
}

/* client_status reads the answer's first line into |status| (NUL
 * terminated, "\n" and a "\r" before it removed) and writes the octets
 * received after it to |out|. Returns 1, or 0 after saying why. */
static int client_status(int fd, const char *path, int send_errno, char *status,
                         FILE *out, FILE *errout, int *rest_to_out) {
    size_t n = 0;
    char chunk[16384];
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fprintf(errout, "smtp-tls-proxy: control socket %s: no answer within %d s\n", path,
                    CONTROL_CLIENT_TIMEOUT);
            return 0;
        }
        if (r <= 0) {
            int e = r < 0 ? errno : send_errno;
            if (e != 0) {
                fprintf(errout, "smtp-tls-proxy: control socket %s: %s\n", path, strerror(e));
            } else {
                fprintf(errout, "smtp-tls-proxy: control socket %s: the proxy closed the "
                                "connection without an answer\n",
                        path);
            }
            return 0;
        }
        char *nl = memchr(chunk, '\n', (size_t)r);
        size_t take = nl != NULL ? (size_t)(nl - chunk) : (size_t)r;
        if (n + take >= CONTROL_STATUS_MAX) {
            fprintf(errout, "smtp-tls-proxy: control socket %s: the answer's first line is "
                            "too long\n",
                    path);
            return 0;
        }
        memcpy(status + n, chunk, take);
        n += take;
        if (nl == NULL) {
            continue;
        }
        if (n > 0 && status[n - 1] == '\r') {
            n--;
        }
        status[n] = '\0';
        *rest_to_out = strcmp(status, "ok") == 0;
        size_t rest = (size_t)r - take - 1;
        if (*rest_to_out && rest > 0) {
            fwrite(nl + 1, 1, rest, out);
        }
        return 1;
    }
}

int control_client(const char *path, int argc, char **argv, FILE *out, FILE *errout) {
    char line[CONTROL_LINE_MAX];
    size_t len = build_request(line, argc, argv, errout);
    if (len == 0) {
        return 1;
    }
    int fd = client_connect(path, errout);
    if (fd < 0) {
        return 2;
    }
    /* A failed send may still leave an answer to read: the server writes
     * its refusals before it closes. */
    int send_errno = 0;
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            send_errno = errno;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                fprintf(errout, "smtp-tls-proxy: control socket %s: the proxy does not read "
                                "(%d s)\n",
                        path, CONTROL_CLIENT_TIMEOUT);
                close(fd);
                return 1;
            }
            break;
        }
        off += (size_t)w;
    }
    char *status = malloc(CONTROL_STATUS_MAX);
    if (status == NULL) {
        fprintf(errout, "smtp-tls-proxy: out of memory\n");
        close(fd);
        return 1;
    }
    int ok = 0;
    if (!client_status(fd, path, send_errno, status, out, errout, &ok)) {
        free(status);
        close(fd);
        return 1;
    }
    if (!ok) {
        const char *reason = strncmp(status, "error", 5) == 0 &&
                                     (status[5] == ' ' || status[5] == '\0')
                                 ? (status[5] == ' ' ? status + 6 : "command failed")
                                 : NULL;
        for (char *p = status; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                *p = '?';
            }
        }
        if (reason != NULL) {
            fprintf(errout, "smtp-tls-proxy: %s\n", reason);
        } else {
            fprintf(errout, "smtp-tls-proxy: control socket %s: unexpected answer \"%.200s\"\n",
                    path, status);
        }
        free(status);
        close(fd);
        return 1;
    }
    free(status);
    char chunk[16384];
    int code = 0;
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            fprintf(errout, "smtp-tls-proxy: control socket %s: %s; the answer is incomplete\n",
                    path,
                    errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
            code = 1;
            break;
        }
        if (r == 0) {
            break;
        }
        fwrite(chunk, 1, (size_t)r, out);
    }
    close(fd);
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(errout, "smtp-tls-proxy: writing the answer: %s\n", strerror(errno));
        return 1;
    }
    return code;
}

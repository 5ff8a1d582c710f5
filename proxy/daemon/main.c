/*
 * main.c - command line, start-up, signals and reload.
 *
 * The main thread parses the configuration, builds and publishes the
 * first snapshot, opens every worker's listening sockets, and then only
 * handles signals: SIGHUP reloads (a new snapshot, published only when
 * all of it is good), SIGTERM/SIGINT stop gracefully.
 */
#include <ev.h>
#include <maxminddb.h>
#include <openssl/base.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "daemon/backends.h"
#include "daemon/control.h"
#include "daemon/healthcheck.h"
#include "daemon/privsep.h"
#include "daemon/notify.h"
#include "daemon/redis_memory.h"
#include "daemon/snapshot.h"
#include "daemon/starttls_memory.h"
#include "daemon/watch.h"
#include "daemon/worker.h"
#include "obs/http.h"
#include "obs/metrics.h"
#include "tls/dane.h"
#include "tls/tls.h"
#include "report/report.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "smtp-tls-proxy must be built against BoringSSL (see README: BORINGSSL_DIR)"
#endif

#define PROXY_VERSION "0.1.0"

struct options {
    const char *config_path; /* NULL: the embedded default */
    int check_only;
    int debug;
    int command_argc; /* a command for the running proxy (memory ...) */
    char **command_argv;
};

static const char usage_text[] =
    "usage: smtp-tls-proxy [-c FILE] [-t] [-d] [-h] [--keys] [--version]\n"
    "       smtp-tls-proxy [-c FILE] memory list | memory forget ADDR|CIDR|all\n"
    "       smtp-tls-proxy [-c FILE] tlsa [--port N]\n"
    "       smtp-tls-proxy report [--help] [options] [FILE...]\n"
    "       smtp-tls-proxy healthcheck [-c FILE] [--timeout SECONDS]\n"
    "\n"
    "  -c FILE    configuration file (default: the embedded demo configuration,\n"
    "             which equals configs/loopback.conf)\n"
    "  -t         check the configuration and exit (0 when it is good)\n"
    "  -d         debug logging\n"
    "  -h         this help\n"
    "  --keys     every configuration key with its default and meaning\n"
    "  --version  version and library versions\n"
    "\n"
    "  memory     ask the running proxy (through [proxy] control_socket of\n"
    "             FILE) for its STARTTLS failure memory: list the senders not\n"
    "             offered STARTTLS, or forget one, a range or all\n"
    "  tlsa       the DANE TLSA records (3 1 1) of FILE's certificates and of\n"
    "             their next_key/next_cert, for port N (default 25)\n"
    "\n"
    "Runs in the foreground and logs to stderr, syslog or a file ([proxy]\n"
    "log_target). SIGHUP reloads the configuration; SIGUSR1 reopens the log\n"
    "file; SIGTERM stops accepting and lets sessions finish.\n";

static void print_version(void) {
    printf("smtp-tls-proxy %s\n", PROXY_VERSION);
    printf("TLS library: %s (BoringSSL API %d)\n", OpenSSL_version(OPENSSL_VERSION),
           BORINGSSL_API_VERSION);
    printf("libev: %d.%d\n", ev_version_major(), ev_version_minor());
    printf("libmaxminddb: %s\n", MMDB_lib_version());
}

/* parse_args returns 1 to go on, or 0 with *out_exit set. */
static int parse_args(int argc, char **argv, struct options *o, int *out_exit) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 && i + 1 < argc) {
            o->config_path = argv[++i];
        } else if (strcmp(a, "-t") == 0) {
            o->check_only = 1;
        } else if (strcmp(a, "-d") == 0) {
            o->debug = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            *out_exit = 0;
            return 0;
        } else if (strcmp(a, "--keys") == 0) {
            config_print_keys(stdout);
            *out_exit = 0;
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            print_version();
            *out_exit = 0;
            return 0;
        } else if (strcmp(a, "tlsa") == 0) {
            *out_exit = dane_main(o->config_path, argc - i, argv + i);
            return 0;
        } else if (strcmp(a, "memory") == 0) {
            o->command_argc = argc - i;
            o->command_argv = argv + i;
            return 1;
        } else {
            fprintf(stderr, "smtp-tls-proxy: unknown or incomplete option \"%s\"\n\n%s", a,
                    usage_text);
            *out_exit = 2;
            return 0;
        }
    }
    return 1;
}

/* run_command sends a command to the running proxy through the control
 * socket its configuration names. Returns the exit code. */
static int run_command(const struct options *o) {
    char err[512];
    struct config *cfg = o->config_path
                             ? config_load(o->config_path, err, sizeof(err))
                             : config_parse_env("(embedded default)", default_config_text,
                                                environ, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        return 2;
    }
    if (cfg->control_socket == NULL) {
        fprintf(stderr, "smtp-tls-proxy: %s has no [proxy] control_socket: the running proxy "
                        "cannot be asked\n", cfg->path);
        config_free(cfg);
        return 2;
    }
    int code = control_client(cfg->control_socket, o->command_argc, o->command_argv, stdout,
                              stderr);
    config_free(cfg);
    return code;
}

/* build_snapshot reads the configuration and everything it names. Under
 * privilege separation the configuration and the TLS files come from
 * the privileged parent (daemon/privsep.h), the rest (GeoIP databases,
 * CIDR files) is read with the proxy's own rights. */
static struct snapshot *build_snapshot(const char *path, char *err, size_t errlen) {
    const char *name = path ? path : "(embedded default)";
    if (privsep_active()) {
        struct privsep_bundle *b = privsep_fetch(err, errlen);
        if (b == NULL) {
            return NULL;
        }
        struct config *cfg = config_parse_env(name, privsep_bundle_config(b), environ, err,
                                              errlen);
        tls_set_file_reader(privsep_bundle_reader, b);
        struct snapshot *s = cfg ? snapshot_new(cfg, err, errlen) : NULL;
        tls_set_file_reader(NULL, NULL);
        privsep_bundle_free(b);
        return s;
    }
    struct config *cfg = path ? config_load(path, err, errlen)
                              : config_parse_env(name, default_config_text, environ, err, errlen);
    if (cfg == NULL) {
        return NULL;
    }
    return snapshot_new(cfg, err, errlen);
}

/* parent_cleanup: the privileged parent keeps neither the proxy's
 * sockets nor its snapshot. */
static void parent_cleanup(void *arg) {
    workers_close_listeners();
    snapshot_release(arg);
}

/* watch_in_parent runs [tls] watch in the privileged parent, armed for
 * the configuration it read at start and at every reload since. */
static void watch_in_parent(struct ev_loop *loop, const struct config *cfg,
                            void (*fire)(void *), void *arg) {
    static struct cert_watch *w;
    if (w == NULL && cfg->tls_watch) {
        w = cert_watch_new(loop, fire, arg);
    }
    cert_watch_configure(w, cfg);
}

/* drop_privileges: started as root, the proxy binds its ports, then runs
 * as [proxy] user under a privileged parent that reads key files for it
 * (daemon/privsep.h). It does not go on as root unless allowed. */
static int drop_privileges(const char *path, struct snapshot *snap, char *err, size_t errlen) {
    const struct config *cfg = snap->cfg;
    uid_t euid = geteuid();
    if (cfg->user == NULL) {
        if (euid == 0 && !cfg->allow_root) {
            snprintf(err, errlen, "%s: refusing to run as root: set [proxy] user = NAME (the "
                                  "proxy binds its ports and reads its keys as root, then runs "
                                  "as NAME), or allow_root = yes", cfg->path);
            return 0;
        }
        if (euid == 0) {
            log_warning("event=running_as_root reason=\"allow_root = yes\"");
        }
        return 1;
    }
    uid_t uid;
    gid_t gid;
    if (!privsep_resolve(cfg, &uid, &gid, err, errlen)) {
        return 0;
    }
    if (euid != 0) {
        if (euid == uid) {
            return 1; /* started as that user already: nothing to drop */
        }
        snprintf(err, errlen, "%s: [proxy] user %s: started as uid %u, not root, so the proxy "
                              "cannot become uid %u", cfg->path, cfg->user, (unsigned)euid,
                 (unsigned)uid);
        return 0;
    }
    if (!workers_open_listeners(cfg, err, errlen)) {
        return 0;
    }
    privsep_set_parent_hook(watch_in_parent);
    if (!privsep_start(path, cfg->user, uid, gid, parent_cleanup, snap, err, errlen)) {
        return 0;
    }
    log_info("event=privileges_dropped user=%s uid=%u gid=%u parent=%ld", cfg->user,
             (unsigned)uid, (unsigned)gid, (long)getppid());
    return 1;
}

static int same_text(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* warn_restart_keys: who the proxy runs as is settled at start; a
 * reload that changes it says so (the rest of the reload applies). */
static void warn_restart_keys(const struct config *a, const struct config *b) {
    if (!same_text(a->user, b->user) || !same_text(a->group, b->group) ||
        a->allow_root != b->allow_root) {
        log_warning("event=reload_needs_restart keys=\"user group allow_root\" reason=\"the "
                    "process runs as it started; restart to apply\"");
    }
}

/* same_listeners: sockets are opened once, so a reload may change
 * everything but the listeners (a restart can). */
static int same_listeners(const struct config *a, const struct config *b) {
    if (a->nlisteners != b->nlisteners) {
        return 0;
    }
    for (size_t i = 0; i < a->nlisteners; i++) {
        const struct listener_config *x = &a->listeners[i], *y = &b->listeners[i];
        if (strcmp(x->name, y->name) != 0 || strcmp(x->address, y->address) != 0) {
            return 0;
        }
    }
    return 1;
}

static const char *config_path;
static struct metrics *metrics;  /* the counters, one shard per worker */
static struct obs_http *http;    /* [metrics] endpoint, or NULL */

/* publish_certificates tells the metrics which certificates |snap| serves. */
static void publish_certificates(const struct snapshot *snap) {
    struct tls_cert_info info[64];
    size_t n = tls_store_certificates(snap->tls, info, sizeof(info) / sizeof(info[0]));
    const char *names[64], *types[64];
    double not_after[64];
    for (size_t i = 0; i < n; i++) {
        names[i] = info[i].name;
        types[i] = info[i].key_type;
        not_after[i] = info[i].not_after;
    }
    metrics_set_certificates(metrics, n, names, types, not_after);
}

/* The main loop's own Redis client: `memory forget` removes keys from
 * the fleet's memory too. */
static struct redis_memory *main_redis;
static struct worker *running_workers;
static int running_nworkers;

/* on_redis_stats gives the metrics (and /healthz) the workers' Redis
 * clients' state, every second. */
static void on_redis_stats(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)t;
    (void)revents;
    struct redis_memory_stats sum;
    struct metrics_redis view = {0};
    workers_redis_stats(running_workers, running_nworkers, &sum, &view.clients, &view.up);
    view.lookups = sum.lookups;
    view.remembered = sum.remembered;
    view.late = sum.late;
    view.errors = sum.errors;
    view.reconnects = sum.reconnects;
    view.unavailable = sum.unavailable;
    metrics_set_redis(metrics, &view);
}

static const struct control_command control_commands[] = {
    /* The variable's address: a reload may make the client later. */
    {"memory", smem_control, &main_redis, "memory list | memory forget ADDR|CIDR|all"},
};

static struct cert_watch *certificate_watch; /* [tls] watch */

static void on_reload(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)loop;
    (void)w;
    (void)revents;
    notify_reloading(); /* READY=1 follows whether or not the reload is good */
    char err[512];
    struct snapshot *next = build_snapshot(config_path, err, sizeof(err));
    if (next == NULL) {
        log_error("event=reload result=failed reason=\"%s\"", err);
        metrics_reload(metrics, 0, 0);
        notify_ready("serving; the last reload failed: the old configuration stays");
        return;
    }
    struct snapshot *cur = snapshot_acquire();
    int same = same_listeners(cur->cfg, next->cfg);
    warn_restart_keys(cur->cfg, next->cfg);
    snapshot_release(cur);
    if (!same) {
        log_error("event=reload result=failed reason=\"listeners changed; restart to apply\"");
        snapshot_release(next);
        metrics_reload(metrics, 0, 0);
        notify_ready("serving; the last reload failed: the old configuration stays");
        return;
    }
    log_set_level((enum log_level)next->cfg->log_level);
    log_set_format((enum log_format)next->cfg->log_format);
    if (!log_set_target((enum log_output)next->cfg->log_target, next->cfg->log_facility,
                        next->cfg->log_file, err, sizeof(err))) {
        log_error("event=log_target result=failed reason=\"%s\": the old target stays", err);
    }
    smem_reconfigure(next->cfg);
    if (main_redis != NULL) {
        redis_memory_configure(main_redis, next->cfg);
    } else {
        main_redis = redis_memory_new(loop, -1, next->cfg);
    }
    metrics_set_memory(metrics, smem_entries, smem_evictions, next->cfg->memory.max_entries);
    cert_watch_configure(certificate_watch, next->cfg);
    publish_certificates(next);
    struct snapshot *before = snapshot_acquire();
    tls_store_report(next->tls, before != NULL ? before->tls : NULL);
    snapshot_release(before);
    snapshot_publish(next);
    metrics_reload(metrics, 1, ev_time());
    log_info("event=reload result=ok generation=%u", next->generation);
    notify_ready("serving; reloaded");
}

/* on_certificates_changed: [tls] watch saw a certificate file change
 * and the files were quiet for watch_delay: the same reload as SIGHUP. */
static void on_certificates_changed(void *arg) {
    on_reload(arg, NULL, 0);
}

/* How often expired STARTTLS memory entries are dropped (so its size
 * metric is true) and the state file's schedule is looked at. */
#define HOUSEKEEPING_INTERVAL 10.0

static double next_save; /* when the state file is written next */

/* on_housekeeping drops expired memory entries and writes the state
 * file every save_interval (as the running configuration says). */
static void on_housekeeping(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)t;
    (void)revents;
    double now = ev_now(loop);
    smem_expire(now);
    if (now >= next_save) {
        struct snapshot *snap = snapshot_acquire();
        smem_save(snap->cfg, ev_time());
        next_save = now + snap->cfg->memory.save_interval;
        snapshot_release(snap);
    }
}


static void on_stop(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)revents;
    log_info("event=stopping signal=%d", w->signum);
    notify_stopping();
    obs_http_set_draining(http); /* /healthz says 503 from now on */
    ev_break(loop, EVBREAK_ALL);
}

/* on_reopen_log: SIGUSR1, sent by logrotate after it renamed the file. */
static void on_reopen_log(struct ev_loop *loop, ev_signal *w, int revents) {
    (void)loop;
    (void)w;
    (void)revents;
    char err[512];
    if (!log_reopen(err, sizeof(err))) {
        log_error("event=log_reopen result=failed reason=\"%s\": the old file stays", err);
    } else if (log_output_in_use() == LOG_OUTPUT_FILE) {
        log_info("event=log_reopen result=ok");
    }
}

/* start_metrics makes the counters and, with [metrics] address, starts
 * the HTTP endpoint (its own thread; nothing it does waits on a worker). */
static int start_metrics(const struct snapshot *snap, int nworkers, char *err, size_t errlen) {
    const struct config *cfg = snap->cfg;
    const char **names = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(char *));
    for (size_t i = 0; names != NULL && i < cfg->nlisteners; i++) {
        names[i] = cfg->listeners[i].name;
    }
    metrics = names != NULL ? metrics_new(cfg->nlisteners, names, nworkers) : NULL;
    free(names);
    if (metrics == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    char tls_library[128];
    snprintf(tls_library, sizeof(tls_library), "%s (BoringSSL API %d)",
             OpenSSL_version(OPENSSL_VERSION), BORINGSSL_API_VERSION);
    metrics_set_build(metrics, PROXY_VERSION, tls_library);
    metrics_set_backends(metrics, backends_pool());
    metrics_reload(metrics, 1, ev_time());
    publish_certificates(snap);
    workers_set_metrics(metrics);
    if (cfg->metrics_address == NULL) {
        return 1;
    }
    http = obs_http_start(&cfg->metrics_addr, metrics, err, errlen);
    if (http != NULL) {
        log_info("event=metrics_listening address=%s", cfg->metrics_address);
    }
    return http != NULL;
}

/* raise_fd_limit lifts the soft descriptor limit to the hard one: each
 * session holds two descriptors. Says so when even that is short. */
static void raise_fd_limit(const struct config *cfg, int nworkers) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need = 2 * (rlim_t)cfg->max_connections + (rlim_t)nworkers * cfg->nlisteners + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        log_warning("event=fd_limit_low limit=%llu needed=%llu: max_connections cannot be "
                    "reached; accepting pauses when descriptors run out",
                    (unsigned long long)rl.rlim_cur, (unsigned long long)need);
    }
}

static int worker_count(const struct config *cfg) {
    if (cfg->workers > 0) {
        return cfg->workers;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "report") == 0) {
        return report_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "healthcheck") == 0) {
        return healthcheck_main(argc - 1, argv + 1); /* the container's probe */
    }
    struct options opt = {0};
    int code = 0;
    if (!parse_args(argc, argv, &opt, &code)) {
        return code;
    }
    if (opt.command_argc > 0) {
        return run_command(&opt);
    }
    char err[512];
    struct snapshot *snap = build_snapshot(opt.config_path, err, sizeof(err));
    if (snap == NULL) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        return 1;
    }
    if (opt.check_only) {
        printf("%s: configuration ok (%zu listeners)\n",
               opt.config_path ? opt.config_path : "(embedded default)",
               snap->cfg->nlisteners);
        for (size_t i = 0; i < snap->cfg->nenv_notes; i++) {
            printf("  %s\n", snap->cfg->env_notes[i]);
        }
        tls_store_report(snap->tls, NULL);
        snapshot_release(snap);
        return 0;
    }
    config_path = opt.config_path;
    log_set_level(opt.debug ? LOG_LEVEL_DEBUG : (enum log_level)snap->cfg->log_level);
    log_set_format((enum log_format)snap->cfg->log_format);
    signal(SIGPIPE, SIG_IGN);
    /* A reload or reopen request while starting (logrotate during a
     * restart) must not kill the proxy; the watchers below take over. */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (!drop_privileges(opt.config_path, snap, err, sizeof(err))) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        return 1;
    }
    /* After the drop: the log file is the user's to create and to make
     * anew after logrotate (SIGUSR1), as state_dir is; the privileged
     * parent keeps logging to stderr. */
    if (!log_set_target((enum log_output)snap->cfg->log_target, snap->cfg->log_facility,
                        snap->cfg->log_file, err, sizeof(err))) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        snapshot_release(snap);
        return 1;
    }
    snapshot_publish(snap);
    tls_store_report(snap->tls, NULL);
    int nworkers = worker_count(snap->cfg);
    raise_fd_limit(snap->cfg, nworkers);
    /* The signal watchers exist before the first connection can be
     * accepted: a SIGTERM or SIGHUP sent as soon as the ports answer
     * must be handled, not lost or fatal. Worker threads start with the
     * signals blocked, so only this thread ever takes them. */
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal hup, term, intr, usr1;
    ev_signal_init(&hup, on_reload, SIGHUP);
    ev_signal_init(&term, on_stop, SIGTERM);
    ev_signal_init(&intr, on_stop, SIGINT);
    ev_signal_start(loop, &hup);
    ev_signal_start(loop, &term);
    ev_signal_start(loop, &intr);
    ev_signal_init(&usr1, on_reopen_log, SIGUSR1);
    ev_signal_start(loop, &usr1);
    sigset_t handled, previous;
    sigemptyset(&handled);
    sigaddset(&handled, SIGHUP);
    sigaddset(&handled, SIGUSR1);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    /* Under privilege separation the parent watches (it can read
     * root-only directories) and sends SIGHUP: watch_in_parent. */
    certificate_watch =
        privsep_active() ? NULL : cert_watch_new(loop, on_certificates_changed, loop);
    if (certificate_watch == NULL && !privsep_active()) {
        fprintf(stderr, "smtp-tls-proxy: out of memory\n");
        return 1;
    }
    cert_watch_configure(certificate_watch, snap->cfg);
    if (!start_metrics(snap, nworkers, err, sizeof(err))) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        return 1;
    }
    /* The memory is in place, with what the last run saved, before the
     * first client can be accepted. */
    if (!smem_start(snap->cfg, ev_time())) {
        fprintf(stderr, "smtp-tls-proxy: out of memory\n");
        return 1;
    }
    metrics_set_memory(metrics, smem_entries, smem_evictions, snap->cfg->memory.max_entries);
    ev_timer housekeeping;
    next_save = ev_now(loop) + snap->cfg->memory.save_interval;
    double tick = snap->cfg->memory.save_interval < HOUSEKEEPING_INTERVAL
                      ? snap->cfg->memory.save_interval
                      : HOUSEKEEPING_INTERVAL;
    ev_timer_init(&housekeeping, on_housekeeping, tick, tick);
    ev_timer_start(loop, &housekeeping);
    /* The control socket is a convenience: mail flows without it, so a
     * failure to make it is logged, not fatal (a second instance is
     * stopped by the listeners, which cannot be shared). */
    main_redis = redis_memory_new(loop, -1, snap->cfg);
    struct control *control = NULL;
    if (snap->cfg->control_socket != NULL) {
        control = control_start(loop, snap->cfg->control_socket, control_commands,
                                sizeof(control_commands) / sizeof(control_commands[0]), err,
                                sizeof(err));
        if (control == NULL) {
            log_error("event=control_unavailable socket=%s reason=\"%s\"",
                      snap->cfg->control_socket, err);
        } else {
            log_info("event=control_listening socket=%s", snap->cfg->control_socket);
        }
    }
    pthread_sigmask(SIG_BLOCK, &handled, &previous);
    struct worker *workers = workers_start(nworkers, err, sizeof(err));
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (workers == NULL) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        return 1;
    }
    running_workers = workers;
    running_nworkers = nworkers;
    ev_timer redis_stats;
    ev_timer_init(&redis_stats, on_redis_stats, 1.0, 1.0);
    ev_timer_start(loop, &redis_stats);
    for (size_t i = 0; i < snap->cfg->nlisteners; i++) {
        const struct listener_config *l = &snap->cfg->listeners[i];
        log_info("event=listening listener=%s address=%s kind=%s tls=%s require_tls=%s",
                 l->name, l->address, listener_kind_name(l->kind), tls_mode_name(l->tls),
                 l->require_tls ? "yes" : "no");
    }
    log_info("event=started version=%s workers=%d backend=\"%s\" config=%s", PROXY_VERSION,
             nworkers, snap->cfg->backend.address,
             opt.config_path ? opt.config_path : "(embedded default)");
    /* Every listening socket was opened by workers_start: they accept. */
    notify_ready("serving");

    ev_run(loop, 0);

    /* Nothing reads the workers' Redis clients once they stop. */
    ev_timer_stop(loop, &redis_stats);
    struct metrics_redis none = {0};
    metrics_set_redis(metrics, &none);
    workers_stop(workers, nworkers);
    control_stop(control);
    /* Every session is over: what they taught the memory is kept. */
    struct snapshot *last = snapshot_acquire();
    smem_save(last->cfg, ev_time());
    snapshot_release(last);
    /* A scrape may still run: it must not reach the table being freed. */
    metrics_set_memory(metrics, NULL, NULL, 0);
    smem_stop();
    redis_memory_free(main_redis);
    obs_http_stop(http);
    metrics_free(metrics);
    cert_watch_free(certificate_watch);
    snapshot_clear();
    log_info("event=stopped");
    return 0;
}

/*
 * dane.c - the tlsa command and the reload's TLSA check.
 */
#include "tls/dane.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "protocol/tlsa.h"
#include "tls/tls.h"

/* Longer than any record line (tlsa.h). */
#define RECORD_MAX 320

static const char tlsa_usage[] =
    "usage: smtp-tls-proxy tlsa [-c FILE] [--port N]\n"
    "\n"
    "Prints the DANE TLSA records (RFC 7672: 3 1 1, the SHA-256 of the public\n"
    "key) of every name of every [certificate] of FILE, for TCP port N\n"
    "(default 25), and those of next_key/next_cert, to publish before the\n"
    "switch (RFC 7671 8.1). Wildcard names have no TLSA owner name and are\n"
    "listed as comments.\n";

/* print_records writes the records of |hash| for the names of |c|; the
 * names that can have none are comments. */
static void print_records(FILE *out, const struct tls_cert_info *c, unsigned port,
                          const uint8_t *hash) {
    for (size_t i = 0; i < c->nnames; i++) {
        const char *name = c->names[i];
        char line[RECORD_MAX];
        switch (tlsa_name_check(name)) {
        case TLSA_NAME_OK:
            if (tlsa_record(line, sizeof(line), port, name, hash) > 0) {
                fprintf(out, "%s\n", line);
            }
            break;
        case TLSA_NAME_WILDCARD:
            fprintf(out, "; %s: wildcard names have no TLSA owner name\n", name);
            break;
        case TLSA_NAME_INVALID: {
            char shown[256];
            log_sanitize(shown, sizeof(shown), name, strlen(name));
            fprintf(out, "; %s: not a host name, no TLSA record\n", shown);
            break;
        }
        }
    }
}

static int print_store(FILE *out, const struct tls_store *s, unsigned port, FILE *errout) {
    struct tls_cert_info c;
    int ok = 1;
    for (size_t i = 0; tls_store_certificate(s, i, &c); i++) {
        fprintf(out, "; [certificate %s] %s\n", c.name, c.key_type);
        print_records(out, &c, port, c.spki_sha256);
        if (c.next_path == NULL) {
            continue;
        }
        const char *what = c.next_is_key ? "next_key" : "next_cert";
        if (c.next_spki_sha256 == NULL) {
            fprintf(errout, "smtp-tls-proxy: [certificate %s]: %s\n", c.name,
                    c.next_error ? c.next_error : "the next key cannot be read");
            ok = 0;
        } else if (memcmp(c.next_spki_sha256, c.spki_sha256, TLS_SPKI_HASH_LEN) == 0) {
            fprintf(out, "; [certificate %s] next: %s %s is the key in use: the rollover is "
                         "done; remove %s and the old records\n", c.name, what, c.next_path,
                    what);
        } else {
            fprintf(out, "; [certificate %s] next: %s %s: publish now, switch after the "
                         "TTL (RFC 7671 8.1)\n", c.name, what, c.next_path);
            print_records(out, &c, port, c.next_spki_sha256);
        }
    }
    return ok;
}

/* parse_port reads 1..65535. */
static int parse_port(const char *text, unsigned *out) {
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || v == 0 || v > 65535) {
        return 0;
    }
    *out = (unsigned)v;
    return 1;
}

int dane_main(const char *config_path, int argc, char **argv) {
    unsigned port = DANE_SMTP_PORT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(a, "--port") == 0 && i + 1 < argc) {
            if (!parse_port(argv[++i], &port)) {
                fprintf(stderr, "smtp-tls-proxy tlsa: --port wants 1..65535, not \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(tlsa_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "smtp-tls-proxy tlsa: unknown or incomplete option \"%s\"\n\n%s",
                    a, tlsa_usage);
            return 2;
        }
    }
    char err[512];
    struct config *cfg = config_path
                             ? config_load(config_path, err, sizeof(err))
                             : config_parse_env("(embedded default)", default_config_text,
                                                environ, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        return 1;
    }
    if (cfg->ncerts == 0) {
        fprintf(stderr, "smtp-tls-proxy: %s has no [certificate]: no TLSA records\n", cfg->path);
        config_free(cfg);
        return 1;
    }
    struct tls_store *s = tls_store_new(cfg, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "smtp-tls-proxy: %s\n", err);
        config_free(cfg);
        return 1;
    }
    int ok = print_store(stdout, s, port, stderr);
    tls_store_free(s);
    config_free(cfg);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "smtp-tls-proxy tlsa: cannot write the records\n");
        return 1;
    }
    return ok ? 0 : 1;
}

void dane_report_changes(const struct tls_store *now, const struct tls_store *before) {
    if (before == NULL) {
        return;
    }
    struct tls_cert_info c;
    for (size_t i = 0; tls_store_certificate(now, i, &c); i++) {
        uint8_t old[TLS_SPKI_HASH_LEN], announced[TLS_SPKI_HASH_LEN];
        int had_next = 0;
        if (!tls_store_spki(before, c.name, old, announced, &had_next) ||
            memcmp(old, c.spki_sha256, TLS_SPKI_HASH_LEN) == 0) {
            continue; /* a new certificate, or the same key */
        }
        char old_hex[2 * TLS_SPKI_HASH_LEN + 1];
        tlsa_hex(old_hex, old);
        if (had_next && memcmp(announced, c.spki_sha256, TLS_SPKI_HASH_LEN) == 0) {
            log_info("event=tlsa_rollover certificate=%s old=\"3 1 1 %s\": the new key was "
                     "announced as next; remove the old key's TLSA records once their TTL "
                     "has passed", c.name, old_hex);
            continue;
        }
        for (size_t k = 0; k < c.nnames; k++) {
            char line[RECORD_MAX];
            if (tlsa_record(line, sizeof(line), DANE_SMTP_PORT, c.names[k], c.spki_sha256) > 0) {
                log_warning("event=tlsa_publish_now certificate=%s record=\"%s\" "
                            "old=\"3 1 1 %s\": the key changed without being announced "
                            "(next_key); DANE senders refuse it until this record is "
                            "published", c.name, line, old_hex);
            }
        }
    }
}

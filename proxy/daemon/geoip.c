/*
 * geoip.c - MaxMind DB lookups for the status header and the logs.
 */
#include "daemon/geoip.h"

#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"

struct geoip {
    MMDB_s country;
    MMDB_s asn;
    int have_country;
    int have_asn;
};

/* open_db opens |path| into |db|. Returns 1 when open, 0 when the file
 * does not exist (logged), -1 on error (|err| set). */
static int open_db(const struct config *cfg, const char *key, const char *path, MMDB_s *db,
                   char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        log_warning("event=geoip_missing key=%s file=%s: the field is left out", key, path);
        return 0;
    }
    int rc = MMDB_open(path, MMDB_MODE_MMAP, db);
    if (rc != MMDB_SUCCESS) {
        snprintf(err, errlen, "%s:%d: [geoip] %s %s: %s%s%s", cfg->path, cfg->geoip_line, key,
                 path, MMDB_strerror(rc), rc == MMDB_IO_ERROR ? ": " : "",
                 rc == MMDB_IO_ERROR ? strerror(errno) : "");
        return -1;
    }
    return 1;
}

struct geoip *geoip_open(const struct config *cfg, char *err, size_t errlen) {
    struct geoip *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        snprintf(err, errlen, "%s: out of memory", cfg->path);
        return NULL;
    }
    int r = 0;
    if (cfg->geoip_country_db != NULL) {
        r = open_db(cfg, "country_db", cfg->geoip_country_db, &g->country, err, errlen);
        g->have_country = r == 1;
    }
    if (r >= 0 && cfg->geoip_asn_db != NULL) {
        r = open_db(cfg, "asn_db", cfg->geoip_asn_db, &g->asn, err, errlen);
        g->have_asn = r == 1;
    }
    if (r < 0) {
        geoip_close(g);
        return NULL;
    }
    return g;
}

/* get_string copies a UTF-8 string at |path| (NULL-terminated list of
 * keys) below |entry| into |out|. Returns 1 when found. */
static int get_string(MMDB_entry_s *entry, char *out, size_t outlen, const char *const *path) {
    MMDB_entry_data_s data;
    if (MMDB_aget_value(entry, &data, path) != MMDB_SUCCESS || !data.has_data ||
        data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size >= outlen) {
        return 0;
    }
    memcpy(out, data.utf8_string, data.data_size);
    out[data.data_size] = '\0';
    return 1;
}

static void lookup_country(const struct geoip *g, const struct sockaddr *sa,
                           struct geoip_result *out) {
    int mmdb_error = 0;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->country, sa, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !r.found_entry) {
        return;
    }
    static const char *const geolite[] = {"country", "iso_code", NULL};
    static const char *const registered[] = {"registered_country", "iso_code", NULL};
    static const char *const flat[] = {"country_code", NULL};
    char code[8] = "";
    if (!get_string(&r.entry, code, sizeof(code), geolite) &&
        !get_string(&r.entry, code, sizeof(code), registered) &&
        !get_string(&r.entry, code, sizeof(code), flat)) {
        return;
    }
    /* Only a well-formed alpha-2 code reaches headers and metrics. */
    if (strlen(code) == 2 && isalpha((unsigned char)code[0]) && isalpha((unsigned char)code[1])) {
        out->country[0] = (char)toupper((unsigned char)code[0]);
        out->country[1] = (char)toupper((unsigned char)code[1]);
        out->country[2] = '\0';
    }
}

static void lookup_asn(const struct geoip *g, const struct sockaddr *sa,
                       struct geoip_result *out) {
    int mmdb_error = 0;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&g->asn, sa, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !r.found_entry) {
        return;
    }
    static const char *const number[] = {"autonomous_system_number", NULL};
    static const char *const org[] = {"autonomous_system_organization", NULL};
    MMDB_entry_data_s data;
    if (MMDB_aget_value(&r.entry, &data, number) == MMDB_SUCCESS && data.has_data) {
        if (data.type == MMDB_DATA_TYPE_UINT32) {
            out->asn = data.uint32;
        } else if (data.type == MMDB_DATA_TYPE_UINT16) {
            out->asn = data.uint16;
        }
    }
    get_string(&r.entry, out->as_org, sizeof(out->as_org), org);
}

void geoip_lookup(const struct geoip *g, const struct net_addr *a, struct geoip_result *out) {
    memset(out, 0, sizeof(*out));
    const struct sockaddr *sa = (const struct sockaddr *)&a->ss;
    if (g == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        return;
    }
    if (g->have_country) {
        lookup_country(g, sa, out);
    }
    if (g->have_asn) {
        lookup_asn(g, sa, out);
    }
}

void geoip_close(struct geoip *g) {
    if (g == NULL) {
        return;
    }
    if (g->have_country) {
        MMDB_close(&g->country);
    }
    if (g->have_asn) {
        MMDB_close(&g->asn);
    }
    free(g);
}

/*
 * test_path_links.c - path_links.h: the directory entries a certificate
 * path depends on, for certbot's and Kubernetes' layouts, relative
 * paths, "." and "..", and link loops.
 */
#include <stdio.h>
#include <string.h>

#include "core/path_links.h"
#include "unit.h"

/* A file system of links: (path, target) pairs; any other path is no link. */
struct links {
    const char *const *table; /* path, target, path, target, ..., NULL */
};

static long table_readlink(const char *path, char *buf, size_t size, void *ctx) {
    const struct links *l = ctx;
    for (size_t i = 0; l->table[i] != NULL; i += 2) {
        if (strcmp(l->table[i], path) == 0) {
            size_t n = strlen(l->table[i + 1]);
            if (n > size) {
                n = size;
            }
            memcpy(buf, l->table[i + 1], n);
            return (long)n;
        }
    }
    return -1;
}

static void collect(const char *dir, const char *name, void *arg) {
    char *out = arg;
    size_t o = strlen(out);
    snprintf(out + o, 2048 - o, "%s%s|%s", o ? " " : "", dir, name);
}

/* entries renders every (dir, name) of |path| as "dir|name" joined by
 * blanks, and the count the call returned. */
static const char *entries(const char *path, const char *cwd, const char *const *table) {
    static char out[2048];
    static char shown[2100];
    struct links l = {table};
    out[0] = '\0';
    int n = path_links_each(path, cwd, table_readlink, &l, collect, out);
    snprintf(shown, sizeof(shown), "%d: %s", n, out);
    return shown;
}

static const char *const no_links[] = {NULL};

UNIT_TEST(path_links_plain_file_is_its_directory_and_name) {
    CHECK_STR(entries("/etc/ssl/mx.pem", "/", no_links), "1: /etc/ssl|mx.pem");
    CHECK_STR(entries("/mx.pem", "/", no_links), "1: /|mx.pem");
    CHECK_STR(entries("//etc///ssl/./mx.pem", "/", no_links), "1: /etc/ssl|mx.pem");
    CHECK_STR(entries("/", "/", no_links), "0: ");
}

UNIT_TEST(path_links_relative_paths_start_at_the_working_directory) {
    CHECK_STR(entries("certs/mx.pem", "/srv/proxy", no_links), "1: /srv/proxy/certs|mx.pem");
    CHECK_STR(entries("../certs/mx.pem", "/srv/proxy", no_links), "1: /srv/certs|mx.pem");
    CHECK_STR(entries("/../../x", "/", no_links), "1: /|x");
}

UNIT_TEST(path_links_certbot_live_link_and_archive_file) {
    static const char *const certbot[] = {
        "/etc/letsencrypt/live/mx/fullchain.pem", "../../archive/mx/fullchain3.pem",
        NULL};
    CHECK_STR(entries("/etc/letsencrypt/live/mx/fullchain.pem", "/", certbot),
              "2: /etc/letsencrypt/live/mx|fullchain.pem /etc/letsencrypt/archive/mx|"
              "fullchain3.pem");
}

UNIT_TEST(path_links_kubernetes_secret_links_the_file_and_a_directory) {
    static const char *const secret[] = {
        "/run/tls/tls.crt", "..data/tls.crt",
        "/run/tls/..data", "..2024_05_01_10_00_00.123",
        NULL};
    CHECK_STR(entries("/run/tls/tls.crt", "/", secret),
              "3: /run/tls|tls.crt /run/tls|..data /run/tls/..2024_05_01_10_00_00.123|tls.crt");
}

UNIT_TEST(path_links_absolute_link_and_dotdot_after_a_link) {
    /* ".." after a link is the link target's parent, as the kernel has it. */
    static const char *const table[] = {
        "/etc/proxy/certs", "/srv/pki/current",
        NULL};
    CHECK_STR(entries("/etc/proxy/certs/../keys/mx.key", "/", table),
              "2: /etc/proxy|certs /srv/pki/keys|mx.key");
    CHECK_STR(entries("/etc/proxy/certs/mx.crt", "/", table),
              "2: /etc/proxy|certs /srv/pki/current|mx.crt");
}

UNIT_TEST(path_links_a_loop_stops_after_forty_links) {
    static const char *const loop[] = {
        "/a/x", "y",
        "/a/y", "x",
        NULL};
    /* 40 links, then the component as it is. */
    const char *got = entries("/a/x", "/", loop);
    CHECK(strncmp(got, "41: /a|x /a|y /a|x ", 19) == 0);
    size_t n = strlen(got);
    CHECK(n > 4 && strcmp(got + n - 4, "/a|x") == 0);
}

UNIT_TEST(path_links_too_long_a_path_fails) {
    static char path[5000];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    CHECK_STR(entries(path, "/", no_links), "-1: ");
}

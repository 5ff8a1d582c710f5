/*
 * path_links.c - the directory entries a path's meaning depends on.
 */
#include "core/path_links.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define MAX_LINKS 40 /* the kernel's limit (ELOOP) */

/* report calls |entry| for the last component of |done| (|dlen| bytes,
 * at least "/x"): the directory before it and its name. */
static void report(char *done, size_t dlen, void (*entry)(const char *, const char *, void *),
                   void *arg) {
    size_t slash = dlen;
    while (slash > 0 && done[slash - 1] != '/') {
        slash--;
    }
    /* done[slash - 1] is the '/' before the name. */
    char keep = done[slash - 1];
    done[slash - 1] = '\0';
    entry(slash > 1 ? done : "/", done + slash, arg);
    done[slash - 1] = keep;
}

int path_links_each(const char *path, const char *cwd, path_readlink_fn readlink_fn, void *ctx,
                    void (*entry)(const char *dir, const char *name, void *arg), void *arg) {
    char pending[PATH_MAX]; /* what is left to resolve, absolute */
    char done[PATH_MAX]; /* the part resolved: no links in it; "" is the root */
    char link[PATH_MAX], next[PATH_MAX];
    int calls = 0, links = 0;
    int w = path[0] == '/' ? snprintf(pending, sizeof(pending), "%s", path)
                           : snprintf(pending, sizeof(pending), "%s/%s", cwd, path);
    if (w < 0 || (size_t)w >= sizeof(pending)) {
        return -1;
    }
restart:;
    size_t dlen = 0;
    done[0] = '\0';
    const char *p = pending;
    for (;;) {
        while (*p == '/') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *e = p;
        while (*e != '\0' && *e != '/') {
            e++;
        }
        size_t len = (size_t)(e - p);
        if (len == 1 && p[0] == '.') {
            p = e;
            continue;
        }
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            /* |done| has no links: its parent is textual. */
            while (dlen > 0 && done[dlen - 1] != '/') {
                dlen--;
            }
            if (dlen > 0) {
                dlen--;
            }
            done[dlen] = '\0';
            p = e;
            continue;
        }
        if (dlen + 1 + len >= sizeof(done)) {
            return -1;
        }
        done[dlen] = '/';
        memcpy(done + dlen + 1, p, len);
        done[dlen + 1 + len] = '\0';
        long n = links < MAX_LINKS ? readlink_fn(done, link, sizeof(link), ctx) : -1;
        if (n < 0) {
            dlen += 1 + len;
            p = e;
            continue;
        }
        if ((size_t)n >= sizeof(link)) {
            return -1;
        }
        link[n] = '\0';
        links++;
        report(done, dlen + 1 + len, entry, arg);
        calls++;
        /* Go on from the root with the link's target in its place. */
        done[dlen] = '\0';
        w = link[0] == '/' ? snprintf(next, sizeof(next), "%s%s", link, e)
                           : snprintf(next, sizeof(next), "%s/%s%s", done, link, e);
        if (w < 0 || (size_t)w >= sizeof(next)) {
            return -1;
        }
        memcpy(pending, next, (size_t)w + 1);
        goto restart;
    }
    if (dlen == 0) {
        return calls; /* the root itself */
    }
    report(done, dlen, entry, arg);
    return calls + 1;
}

/*
 * unit.c - the runner behind unit.h. `unit-tests [SUBSTRING]` runs the
 * tests whose names contain SUBSTRING (all by default).
 */
#include "unit.h"

#include <stdarg.h>
#include <stdio.h>

static struct unit_test *tests;
static int current_failed;

void unit_register(struct unit_test *t) {
    t->next = tests;
    tests = t;
}

void unit_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    current_failed = 1;
}

const char *unit_show_bytes(const char *p, size_t n) {
    static char out[8192];
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < sizeof(out); i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') {
            o += (size_t)sprintf(out + o, "\\r");
        } else if (c == '\n') {
            o += (size_t)sprintf(out + o, "\\n");
        } else if (c == '\t') {
            o += (size_t)sprintf(out + o, "\\t");
        } else if (c < 32 || c > 126 || c == '"' || c == '\\') {
            o += (size_t)sprintf(out + o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

int main(int argc, char **argv) {
    /* Registration by constructors reverses the order; restore it. */
    struct unit_test *ordered = NULL;
    while (tests != NULL) {
        struct unit_test *t = tests;
        tests = t->next;
        t->next = ordered;
        ordered = t;
    }
    int passed = 0, failed = 0;
    for (struct unit_test *t = ordered; t != NULL; t = t->next) {
        if (argc > 1 && strstr(t->name, argv[1]) == NULL) {
            continue;
        }
        current_failed = 0;
        t->fn();
        if (current_failed) {
            fprintf(stderr, "FAIL %s\n", t->name);
            failed++;
        } else {
            passed++;
        }
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

/*
 * fuzz_failmem.c - libFuzzer target for what the STARTTLS failure memory
 * reads from disk and from the configuration: any state file either
 * loads or is refused whole with a reason, and what loaded writes out
 * again and loads to the same text (a round trip); any CIDR list text
 * parses or is refused, never a crash or a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "core/failmem.h"

/* A fixed "now", so an entry's expiry means the same on every run. */
#define NOW 1800000000.0

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct failmem *m = failmem_new(64);
    if (m == NULL) {
        return 0;
    }
    char why[256] = "";
    long n = failmem_deserialize(m, (const char *)data, size, NOW, why, sizeof(why));
    if (n < 0 && why[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    if (n >= 0 && failmem_count(m) > 64) {
        abort();
    }
    size_t len1 = 0;
    char *text1 = failmem_serialize(m, NOW, &len1);
    if (text1 != NULL) {
        struct failmem *again = failmem_new(64);
        if (again != NULL) {
            if (failmem_deserialize(again, text1, len1, NOW, why, sizeof(why)) < 0) {
                abort(); /* what we write we must read */
            }
            size_t len2 = 0;
            char *text2 = failmem_serialize(again, NOW, &len2);
            if (text2 != NULL && (len2 != len1 || memcmp(text1, text2, len1) != 0)) {
                abort();
            }
            free(text2);
            failmem_free(again);
        }
        free(text1);
    }
    failmem_free(m);

    char *text = malloc(size + 1);
    if (text != NULL) {
        memcpy(text, data, size);
        text[size] = '\0';
        struct cidr_list l = {0};
        if (!cidr_list_add_text(&l, text, why, sizeof(why)) && l.n != 0) {
            abort(); /* all or nothing */
        }
        cidr_list_free(&l);
        free(text);
    }
    return 0;
}

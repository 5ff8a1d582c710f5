/*
 * fuzz_config.c - libFuzzer target for the configuration parser: any
 * text gives a config or an error naming "path:line:", never a crash or
 * a leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"

/* No DNS while fuzzing: "bad.test" does not resolve, every other name is
 * 192.0.2.1 and 192.0.2.2 (two targets). */
static size_t fuzz_resolver(const char *host, struct net_addr *out, size_t max, char *err,
                            size_t errlen) {
    if (strcmp(host, "bad.test") == 0 || max < 2) {
        snprintf(err, errlen, "not found");
        return 0;
    }
    char why[64];
    size_t n = net_addr_parse("192.0.2.1:1", &out[0], why, sizeof(why));
    n += net_addr_parse("192.0.2.2:1", &out[n], why, sizeof(why));
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    config_set_resolver(fuzz_resolver);
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char err[512] = "";
    struct config *c = config_parse("fuzz.conf", text, err, sizeof(err));
    if (c == NULL && strncmp(err, "fuzz.conf:", 10) != 0) {
        abort();
    }
    config_free(c);
    free(text);
    return 0;
}

/*
 * fuzz_config.c - libFuzzer target for the configuration parser: any
 * text gives a config or an error naming "path:line:", never a crash or
 * a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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

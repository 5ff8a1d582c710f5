/*
 * tlsa.c - TLSA record lines.
 */
#include "protocol/tlsa.h"

#include <stdio.h>
#include <string.h>

/* A DNS name is at most 253 octets as text without the final dot. */
#define NAME_MAX_TEXT 253

enum tlsa_name tlsa_name_check(const char *name) {
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n > NAME_MAX_TEXT) {
        return TLSA_NAME_INVALID;
    }
    if (name[0] == '*') {
        return TLSA_NAME_WILDCARD;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0) {
                return TLSA_NAME_INVALID;
            }
            label = 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_';
        if (!ok || ++label > 63) {
            return TLSA_NAME_INVALID;
        }
    }
    return TLSA_NAME_OK;
}

void tlsa_hex(char out[2 * TLSA_HASH_LEN + 1], const uint8_t hash[TLSA_HASH_LEN]) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < TLSA_HASH_LEN; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 0x0f];
    }
    out[2 * TLSA_HASH_LEN] = '\0';
}

size_t tlsa_record(char *out, size_t outlen, unsigned port, const char *name,
                   const uint8_t hash[TLSA_HASH_LEN]) {
    if (tlsa_name_check(name) != TLSA_NAME_OK || port == 0 || port > 65535) {
        return 0;
    }
    size_t n = strlen(name);
    if (name[n - 1] == '.') {
        n--;
    }
    char hex[2 * TLSA_HASH_LEN + 1];
    tlsa_hex(hex, hash);
    int w = snprintf(out, outlen, "_%u._tcp.%.*s. IN TLSA 3 1 1 %s", port, (int)n, name, hex);
    if (w < 0 || (size_t)w >= outlen) {
        if (outlen > 0) {
            out[0] = '\0';
        }
        return 0;
    }
    return (size_t)w;
}

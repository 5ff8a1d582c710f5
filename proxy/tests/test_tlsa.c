/*
 * test_tlsa.c - tlsa.h: the zone-file line of a DANE-EE SPKI SHA2-256
 * record, and which names can own one.
 */
#include <string.h>

#include "protocol/tlsa.h"
#include "unit.h"

static void hash_0_to_31(uint8_t h[TLSA_HASH_LEN]) {
    for (int i = 0; i < TLSA_HASH_LEN; i++) {
        h[i] = (uint8_t)(i * 8 + 0x0a);
    }
}

UNIT_TEST(tlsa_record_is_port_tcp_name_with_a_final_dot_and_lowercase_hex) {
    uint8_t h[TLSA_HASH_LEN];
    hash_0_to_31(h);
    char line[320];
    size_t n = tlsa_record(line, sizeof(line), 25, "mx.example.net", h);
    CHECK_STR(line, "_25._tcp.mx.example.net. IN TLSA 3 1 1 "
                    "0a121a222a323a424a525a626a727a828a929aa2aab2bac2cad2dae2eaf2fa02");
    CHECK_INT(n, strlen(line));
    /* A name given with its final dot gets no second one; case stays. */
    tlsa_record(line, sizeof(line), 587, "MX.Example.NET.", h);
    CHECK(strncmp(line, "_587._tcp.MX.Example.NET. IN TLSA 3 1 1 0a12", 44) == 0);
}

UNIT_TEST(tlsa_record_refuses_wildcards_bad_names_bad_ports_and_short_buffers) {
    uint8_t h[TLSA_HASH_LEN] = {0};
    char line[320];
    CHECK_INT(tlsa_record(line, sizeof(line), 25, "*.example.net", h), 0);
    CHECK_INT(tlsa_record(line, sizeof(line), 25, "a b.example.net", h), 0);
    CHECK_INT(tlsa_record(line, sizeof(line), 0, "mx.example.net", h), 0);
    CHECK_INT(tlsa_record(line, sizeof(line), 65536, "mx.example.net", h), 0);
    CHECK_INT(tlsa_record(line, 40, 25, "mx.example.net", h), 0);
    CHECK_STR(line, "");
}

UNIT_TEST(tlsa_name_check_sorts_host_names_wildcards_and_the_rest) {
    CHECK_INT(tlsa_name_check("mx.example.net"), TLSA_NAME_OK);
    CHECK_INT(tlsa_name_check("mx.example.net."), TLSA_NAME_OK);
    CHECK_INT(tlsa_name_check("localhost"), TLSA_NAME_OK);
    CHECK_INT(tlsa_name_check("mx-1.ex_ample.net"), TLSA_NAME_OK);
    CHECK_INT(tlsa_name_check("*.example.net"), TLSA_NAME_WILDCARD);
    CHECK_INT(tlsa_name_check("*"), TLSA_NAME_WILDCARD);
    CHECK_INT(tlsa_name_check(""), TLSA_NAME_INVALID);
    CHECK_INT(tlsa_name_check("."), TLSA_NAME_INVALID);
    CHECK_INT(tlsa_name_check("mx..example.net"), TLSA_NAME_INVALID);
    CHECK_INT(tlsa_name_check(".example.net"), TLSA_NAME_INVALID);
    CHECK_INT(tlsa_name_check("mx.exa mple.net"), TLSA_NAME_INVALID);
    CHECK_INT(tlsa_name_check("mx.example.net\"; rm"), TLSA_NAME_INVALID);
    char label[80];
    memset(label, 'a', 64);
    strcpy(label + 64, ".net");
    CHECK_INT(tlsa_name_check(label), TLSA_NAME_INVALID); /* a label of 64 */
    memset(label, 'a', 63);
    strcpy(label + 63, ".net");
    CHECK_INT(tlsa_name_check(label), TLSA_NAME_OK); /* a label of 63 */
}

UNIT_TEST(tlsa_hex_is_lowercase_two_digits_per_octet) {
    uint8_t h[TLSA_HASH_LEN];
    memset(h, 0xab, sizeof(h));
    h[0] = 0x00;
    h[31] = 0xf0;
    char hex[2 * TLSA_HASH_LEN + 1];
    tlsa_hex(hex, h);
    CHECK_STR(hex, "00abababababababababababababababababababababababababababababab""f0");
}

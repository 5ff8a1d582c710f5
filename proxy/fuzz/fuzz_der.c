/*
 * fuzz_der.c - libFuzzer target for the DER readers that see files an
 * operator names (protocol/der.c: certificates and public keys for
 * TLSA; protocol/ocsp.c: OCSP responses to staple). A response file can
 * come from any responder or a broken fetch script. Any input is read as
 * an OCSP response, a certificate and a SubjectPublicKeyInfo. Checked,
 * besides memory safety under ASan/UBSan:
 *  - every view a successful parse gives lies inside the input;
 *  - a parsed OCSP response has at most OCSP_SINGLE_MAX SingleResponses,
 *    none when it is not successful, and ocsp_check gives a named
 *    verdict for it;
 *  - a certificate's SPKI parses again on its own, to the same key bits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/der.h"
#include "protocol/ocsp.h"

static void inside(const struct der *v, const uint8_t *data, size_t size) {
    if (v->n > 0 && (v->p < data || v->p + v->n > data + size)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct ocsp_response r;
    if (ocsp_parse(data, size, &r)) {
        if (r.nsingle > OCSP_SINGLE_MAX || (r.response_status != 0 && r.nsingle != 0)) {
            abort();
        }
        for (size_t i = 0; i < r.nsingle; i++) {
            inside(&r.single[i].serial, data, size);
            inside(&r.single[i].issuer_name_hash, data, size);
            inside(&r.single[i].issuer_key_hash, data, size);
        }
        struct ocsp_cert_id id;
        memset(&id, 0, sizeof(id));
        if (r.nsingle > 0) {
            id.serial = r.single[0].serial;
        }
        int64_t until = 0;
        const char *name = ocsp_verdict_name(ocsp_check(&r, &id, 1700000000, &until));
        if (name == NULL || name[0] == '\0') {
            abort();
        }
    }
    struct der_cert c;
    if (der_cert_parse(data, size, &c)) {
        inside(&c.serial, data, size);
        inside(&c.issuer, data, size);
        inside(&c.spki, data, size);
        inside(&c.public_key, data, size);
        struct der again;
        if (!der_spki_parse(c.spki.p, c.spki.n, &again) || again.n != c.public_key.n ||
            memcmp(again.p, c.public_key.p, again.n) != 0) {
            abort();
        }
    }
    struct der key;
    if (der_spki_parse(data, size, &key)) {
        inside(&key, data, size);
    }
    return 0;
}

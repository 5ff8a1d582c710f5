/*
 * tls.c - loading certificates and choosing one per handshake.
 *
 * Debian's BoringSSL (API 17) has no SSL_CREDENTIAL: an SSL_CTX holds one
 * certificate. So the certificate is not in the listener's SSL_CTX at
 * all: every certificate is kept as a chain of CRYPTO_BUFFERs (shared,
 * never copied per connection) plus its key, and the select-certificate
 * callback, which runs before resumption and before any certificate is
 * needed, picks one by SNI and by what the client can verify, and sets it
 * on the connection with SSL_set_chain_and_key, with its OCSP staple
 * when the client asked for one.
 *
 * What a load finds that does not stop the certificate from being served
 * (expiry, an OCSP response that cannot be stapled, a next key that
 * cannot be read) is kept in the store and logged by tls_store_report
 * once the store is in force (and by -t), so a reload that is refused
 * says nothing about it and the tlsa command stays quiet.
 */
#include "tls/tls.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <openssl/bytestring.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "protocol/der.h"
#include "protocol/ocsp.h"
#include "protocol/sni.h"
#include "protocol/tls_hello.h"
#include "protocol/tlsa.h"
#include "tls/dane.h"
#include "tls/tickets.h"

_Static_assert(TLS_SPKI_HASH_LEN == TLSA_HASH_LEN, "one hash for both");

/* Room for "cannot open PATH: reason" and the like. */
#define TLS_WHY_MAX 320

struct tls_cert {
    const struct cert_config *cfg;
    CRYPTO_BUFFER **chain;
    size_t nchain;
    EVP_PKEY *key;
    enum sni_key key_type;
    enum ecdsa_curve curve; /* ECDSA keys */
    double not_after;       /* the leaf's notAfter, seconds since 1970 */
    char **names;           /* the names it was mapped with (add_cert_names) */
    size_t nnames;
    uint8_t spki_sha256[TLSA_HASH_LEN]; /* of the leaf's SubjectPublicKeyInfo */
    /* next_key or next_cert (RFC 7671 8.1): the SPKI hash, or why not */
    int has_next;
    uint8_t next_sha256[TLSA_HASH_LEN];
    char next_error[TLS_WHY_MAX]; /* "": read, or none configured */
    /* ocsp: the staple (NULL: none) and what the load decided */
    uint8_t *ocsp;
    size_t ocsp_len;
    int64_t ocsp_until; /* stapled before this (seconds since 1970) */
    enum ocsp_verdict ocsp_verdict;
    char ocsp_error[TLS_WHY_MAX]; /* OCSP_UNREADABLE: why */
    atomic_int ocsp_lapse_logged; /* the staple went stale while in force: said once */
};

struct tls_store {
    CRYPTO_BUFFER_POOL *pool;
    struct tls_cert *certs;
    size_t ncerts;
    struct sni_table sni;
    const struct sni_entry *fallback; /* the default certificate's names */
    SSL_CTX **listener_ctx;           /* NULL for plaintext listeners */
    size_t nlisteners;
    double expiry_warning;            /* [tls] expiry_warning */
};

/* The store an SSL_CTX belongs to, for the callback. */
static int store_ex_index = -1;

void tls_describe_error(char *out, size_t outlen, const char *fallback) {
    uint32_t e = ERR_get_error();
    if (e == 0) {
        snprintf(out, outlen, "%s", fallback);
    } else {
        const char *reason = ERR_reason_error_string(e);
        const char *lib = ERR_lib_error_string(e);
        snprintf(out, outlen, "%s%s%s", lib ? lib : "", lib ? ": " : "",
                 reason ? reason : "unknown error");
        for (char *c = out; *c; c++) {
            *c = (*c == ' ') ? '_' : *c;
        }
    }
    ERR_clear_error();
}

/* ---- loading ---- */

struct load {
    const struct config *cfg;
    char *err;
    size_t errlen;
};

static int load_fail(struct load *l, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int load_fail(struct load *l, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    config_verror(l->err, l->errlen, l->cfg->path, line, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return 0;
}

/* ---- where files come from ---- */

static tls_file_reader *file_reader; /* NULL: the disk */
static void *file_reader_arg;

void tls_set_file_reader(tls_file_reader *fn, void *arg) {
    file_reader = fn;
    file_reader_arg = arg;
}

/* Certificate chains, keys and OCSP responses are small. */
#define TLS_FILE_MAX (1u << 20)

int tls_read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen) {
    if (file_reader != NULL) {
        return file_reader(file_reader_arg, path, out, len, err, errlen);
    }
    int why;
    char *buf = config_slurp(path, TLS_FILE_MAX, len, &why);
    if (buf == NULL) {
        if (why == EFBIG || why == ENOMEM) {
            snprintf(err, errlen, "cannot read %s: %s", path,
                     why == EFBIG ? "larger than 1 MiB" : "out of memory");
        } else {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(why));
        }
        return 0;
    }
    *out = (uint8_t *)buf;
    return 1;
}

/* open_file reads |path| (through the reader) into a memory BIO; the
 * bytes read are wiped (key files pass through here). */
static BIO *open_file(struct load *l, const struct cert_config *cc, const char *path) {
    uint8_t *data;
    size_t len;
    char why[300];
    if (!tls_read_file(path, &data, &len, why, sizeof(why))) {
        load_fail(l, cc->line, "[certificate %s]: %s", cc->name, why);
        return NULL;
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL || BIO_write(b, data, (int)len) != (int)len) {
        BIO_free(b);
        b = NULL;
        load_fail(l, cc->line, "[certificate %s]: out of memory", cc->name);
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return b;
}

/* read_chain reads every certificate of a PEM file, leaf first. */
static int read_chain(struct load *l, struct tls_store *s, struct tls_cert *c, X509 **out_leaf) {
    const struct cert_config *cc = c->cfg;
    BIO *f = open_file(l, cc, cc->cert_path);
    if (f == NULL) {
        return 0;
    }
    X509 *x;
    while ((x = PEM_read_bio_X509(f, NULL, NULL, NULL)) != NULL) {
        uint8_t *der = NULL;
        int len = i2d_X509(x, &der);
        CRYPTO_BUFFER **grown = realloc(c->chain, (c->nchain + 1) * sizeof(*grown));
        CRYPTO_BUFFER *buf = len > 0 ? CRYPTO_BUFFER_new(der, (size_t)len, s->pool) : NULL;
        OPENSSL_free(der);
        if (grown != NULL) {
            c->chain = grown;
        }
        if (grown == NULL || buf == NULL) {
            CRYPTO_BUFFER_free(buf);
            X509_free(x);
            BIO_free(f);
            return load_fail(l, cc->line, "[certificate %s]: out of memory", cc->name);
        }
        c->chain[c->nchain++] = buf;
        if (*out_leaf == NULL) {
            *out_leaf = x;
        } else {
            X509_free(x);
        }
    }
    BIO_free(f);
    /* The loop ends on "no more PEM blocks", which is an error code too. */
    ERR_clear_error();
    if (c->nchain == 0) {
        return load_fail(l, cc->line, "[certificate %s]: %s holds no PEM certificate",
                         cc->name, cc->cert_path);
    }
    return 1;
}

static int read_key(struct load *l, struct tls_cert *c, X509 *leaf) {
    const struct cert_config *cc = c->cfg;
    BIO *f = open_file(l, cc, cc->key_path);
    if (f == NULL) {
        return 0;
    }
    c->key = PEM_read_bio_PrivateKey(f, NULL, NULL, NULL);
    BIO_free(f);
    if (c->key == NULL) {
        return load_fail(l, cc->line, "[certificate %s]: %s holds no readable PEM private key",
                         cc->name, cc->key_path);
    }
    switch (EVP_PKEY_id(c->key)) {
    case EVP_PKEY_EC:
        c->key_type = SNI_KEY_ECDSA;
        switch (EC_GROUP_get_curve_name(EC_KEY_get0_group(EVP_PKEY_get0_EC_KEY(c->key)))) {
        case NID_X9_62_prime256v1:
            c->curve = ECDSA_P256;
            break;
        case NID_secp384r1:
            c->curve = ECDSA_P384;
            break;
        case NID_secp521r1:
            c->curve = ECDSA_P521;
            break;
        default:
            return load_fail(l, cc->line, "[certificate %s]: ECDSA keys must be on P-256, "
                                          "P-384 or P-521", cc->name);
        }
        break;
    case EVP_PKEY_RSA:
        c->key_type = SNI_KEY_RSA;
        break;
    default:
        return load_fail(l, cc->line, "[certificate %s]: only ECDSA and RSA keys are supported",
                         cc->name);
    }
    if (!X509_check_private_key(leaf, c->key)) {
        return load_fail(l, cc->line, "[certificate %s]: key %s does not match certificate %s",
                         cc->name, cc->key_path, cc->cert_path);
    }
    return 1;
}

/* add_name maps one name to |index|; a second certificate of the same key
 * type for a name is a configuration error, not a silent choice. */
static int add_name(struct load *l, struct tls_store *s, size_t index, const char *name) {
    struct tls_cert *c = &s->certs[index];
    switch (sni_table_add(&s->sni, name, c->key_type, index)) {
    case SNI_ADD_OK: {
        /* Kept as given, for the TLSA records (tls/dane.h). */
        char **grown = realloc(c->names, (c->nnames + 1) * sizeof(*grown));
        char *copy = strdup(name);
        if (grown != NULL) {
            c->names = grown;
        }
        if (grown == NULL || copy == NULL) {
            free(copy);
            break;
        }
        c->names[c->nnames++] = copy;
        return 1;
    }
    case SNI_ADD_DUPLICATE:
        return load_fail(l, c->cfg->line,
                         "[certificate %s]: %s already has an %s certificate; use names = "
                         "to say which certificate serves which name",
                         c->cfg->name, name, c->key_type == SNI_KEY_ECDSA ? "ECDSA" : "RSA");
    case SNI_ADD_NOMEM:
        break;
    }
    return load_fail(l, c->cfg->line, "out of memory");
}

/* add_cert_names maps the configured names, or else the certificate's
 * DNS subjectAltNames, or else its common name. */
static int add_cert_names(struct load *l, struct tls_store *s, size_t index, X509 *leaf) {
    const struct cert_config *cc = s->certs[index].cfg;
    if (cc->nnames > 0) {
        for (size_t i = 0; i < cc->nnames; i++) {
            if (!add_name(l, s, index, cc->names[i])) {
                return 0;
            }
        }
        return 1;
    }
    int added = 0, ok = 1;
    GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (size_t i = 0; ok && sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type != GEN_DNS) {
            continue;
        }
        char name[256];
        int n = ASN1_STRING_length(gn->d.dNSName);
        if (n <= 0 || n >= (int)sizeof(name)) {
            continue;
        }
        memcpy(name, ASN1_STRING_get0_data(gn->d.dNSName), (size_t)n);
        name[n] = '\0';
        if (strlen(name) != (size_t)n) {
            continue; /* an embedded NUL: never a name we serve */
        }
        ok = add_name(l, s, index, name);
        added++;
    }
    GENERAL_NAMES_free(sans);
    if (!ok) {
        return 0;
    }
    if (added == 0) {
        char cn[256];
        X509_NAME *subject = X509_get_subject_name(leaf);
        if (X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof(cn)) <= 0) {
            return load_fail(l, cc->line, "[certificate %s]: the certificate has no DNS names; "
                                          "list them with names =", cc->name);
        }
        return add_name(l, s, index, cn);
    }
    return 1;
}

/* not_after_of is the certificate's notAfter as seconds since 1970 (0
 * when it cannot be read). */
static double not_after_of(X509 *leaf) {
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, seconds = 0;
    int ok = epoch != NULL && ASN1_TIME_diff(&days, &seconds, epoch, X509_get0_notAfter(leaf));
    ASN1_TIME_free(epoch);
    return ok ? (double)days * 86400.0 + seconds : 0;
}

/* chain_parts finds the parts of the chain's certificate |i|. */
static int chain_parts(const struct tls_cert *c, size_t i, struct der_cert *out) {
    return der_cert_parse(CRYPTO_BUFFER_data(c->chain[i]), CRYPTO_BUFFER_len(c->chain[i]), out);
}

/* pem_bio is a read-only memory BIO over |len| octets at |data|. */
static BIO *pem_bio(const uint8_t *data, size_t len) {
    return len <= TLS_FILE_MAX ? BIO_new_mem_buf(data, (int)len) : NULL;
}

/* spki_of_key hashes the SubjectPublicKeyInfo of |key|, as a certificate
 * for it would carry it. */
static int spki_of_key(const EVP_PKEY *key, uint8_t out[TLSA_HASH_LEN]) {
    CBB cbb;
    uint8_t *der = NULL;
    size_t len = 0;
    if (!CBB_init(&cbb, 128) || !EVP_marshal_public_key(&cbb, key) ||
        !CBB_finish(&cbb, &der, &len)) {
        CBB_cleanup(&cbb);
        return 0;
    }
    SHA256(der, len, out);
    OPENSSL_free(der);
    return 1;
}

/* next_from_key: a PEM private key (its public half counts) or a PEM
 * public key. */
static int next_from_key(struct tls_cert *c, const uint8_t *data, size_t len) {
    BIO *b = pem_bio(data, len);
    EVP_PKEY *key = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (key == NULL) {
        ERR_clear_error();
        b = pem_bio(data, len);
        key = b != NULL ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
    }
    int ok = key != NULL && spki_of_key(key, c->next_sha256);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

/* next_from_cert: the first certificate of a PEM file. */
static int next_from_cert(struct tls_cert *c, const uint8_t *data, size_t len) {
    BIO *b = pem_bio(data, len);
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    uint8_t *der = NULL;
    int dlen = x != NULL ? i2d_X509(x, &der) : -1;
    struct der_cert parts;
    int ok = dlen > 0 && der_cert_parse(der, (size_t)dlen, &parts);
    if (ok) {
        SHA256(parts.spki.p, parts.spki.n, c->next_sha256);
    }
    OPENSSL_free(der);
    X509_free(x);
    ERR_clear_error();
    return ok;
}

/* load_next reads next_key or next_cert. Not being able to is no reason
 * to refuse the load: nothing served depends on it (tls_store_report
 * says so; the tlsa command fails). */
static void load_next(struct tls_cert *c) {
    const struct cert_config *cc = c->cfg;
    int is_key = cc->next_key_path != NULL;
    const char *path = is_key ? cc->next_key_path : cc->next_cert_path;
    if (path == NULL) {
        return;
    }
    uint8_t *data;
    size_t len;
    char why[TLS_WHY_MAX - 32];
    if (!tls_read_file(path, &data, &len, why, sizeof(why))) {
        snprintf(c->next_error, sizeof(c->next_error), "%s: %s",
                 is_key ? "next_key" : "next_cert", why);
        return;
    }
    c->has_next = is_key ? next_from_key(c, data, len) : next_from_cert(c, data, len);
    if (!c->has_next) {
        snprintf(c->next_error, sizeof(c->next_error), "%s %.200s holds no readable PEM %s",
                 is_key ? "next_key" : "next_cert", path,
                 is_key ? "private or public key" : "certificate");
    }
    OPENSSL_cleanse(data, len);
    free(data);
}

/* load_ocsp reads the ocsp file and keeps it as the staple when it is for
 * this certificate, says good and is current (protocol/ocsp.h). Any other
 * outcome serves the certificate without a staple: a missing or stale
 * response must not take TLS down with it. */
static void load_ocsp(struct tls_cert *c, time_t now) {
    const struct cert_config *cc = c->cfg;
    if (cc->ocsp_path == NULL) {
        return;
    }
    uint8_t *data;
    size_t len;
    if (!tls_read_file(cc->ocsp_path, &data, &len, c->ocsp_error, sizeof(c->ocsp_error))) {
        c->ocsp_verdict = OCSP_UNREADABLE;
        return;
    }
    struct ocsp_response r;
    struct der_cert leaf, issuer;
    if (!ocsp_parse(data, len, &r) || !chain_parts(c, 0, &leaf)) {
        c->ocsp_verdict = OCSP_UNPARSABLE;
        free(data);
        return;
    }
    struct ocsp_cert_id id = {.serial = leaf.serial};
    SHA1(leaf.issuer.p, leaf.issuer.n, id.name_sha1);
    SHA256(leaf.issuer.p, leaf.issuer.n, id.name_sha256);
    /* The issuer's key is known when the chain has the issuer after the
     * leaf; otherwise the serial and the issuer's name must do. */
    if (c->nchain > 1 && chain_parts(c, 1, &issuer)) {
        id.has_issuer_key = 1;
        SHA1(issuer.public_key.p, issuer.public_key.n, id.key_sha1);
        SHA256(issuer.public_key.p, issuer.public_key.n, id.key_sha256);
    }
    c->ocsp_verdict = ocsp_check(&r, &id, (int64_t)now, &c->ocsp_until);
    if (c->ocsp_verdict == OCSP_STAPLE) {
        c->ocsp = data;
        c->ocsp_len = len;
    } else {
        free(data);
    }
}

static int load_certificate(struct load *l, struct tls_store *s, size_t index, time_t now) {
    struct tls_cert *c = &s->certs[index];
    X509 *leaf = NULL;
    int ok = read_chain(l, s, c, &leaf) && read_key(l, c, leaf) &&
             add_cert_names(l, s, index, leaf);
    if (ok) {
        c->not_after = not_after_of(leaf);
        struct der_cert parts;
        if (!chain_parts(c, 0, &parts)) {
            ok = load_fail(l, c->cfg->line, "[certificate %s]: cannot find the public key in %s",
                           c->cfg->name, c->cfg->cert_path);
        } else {
            SHA256(parts.spki.p, parts.spki.n, c->spki_sha256);
        }
    }
    X509_free(leaf);
    if (ok) {
        load_next(c);
        load_ocsp(c, now);
    }
    return ok;
}

int tls_store_certificate(const struct tls_store *s, size_t i, struct tls_cert_info *out) {
    if (s == NULL || i >= s->ncerts) {
        return 0;
    }
    const struct tls_cert *c = &s->certs[i];
    out->name = c->cfg->name;
    out->key_type = c->key_type == SNI_KEY_ECDSA ? "ecdsa" : "rsa";
    out->not_after = c->not_after;
    out->names = (const char *const *)c->names;
    out->nnames = c->nnames;
    out->spki_sha256 = c->spki_sha256;
    out->next_spki_sha256 = c->has_next ? c->next_sha256 : NULL;
    out->next_is_key = c->cfg->next_key_path != NULL;
    out->next_path = out->next_is_key ? c->cfg->next_key_path : c->cfg->next_cert_path;
    out->next_error = c->next_error[0] ? c->next_error : NULL;
    return 1;
}

size_t tls_store_certificates(const struct tls_store *s, struct tls_cert_info *out,
                              size_t max) {
    size_t n = 0;
    while (n < max && tls_store_certificate(s, n, &out[n])) {
        n++;
    }
    return n;
}

int tls_store_spki(const struct tls_store *s, const char *name,
                   uint8_t current[TLS_SPKI_HASH_LEN], uint8_t next[TLS_SPKI_HASH_LEN],
                   int *has_next) {
    for (size_t i = 0; s != NULL && i < s->ncerts; i++) {
        const struct tls_cert *c = &s->certs[i];
        if (strcmp(c->cfg->name, name) == 0) {
            memcpy(current, c->spki_sha256, TLSA_HASH_LEN);
            *has_next = c->has_next;
            if (c->has_next) {
                memcpy(next, c->next_sha256, TLSA_HASH_LEN);
            }
            return 1;
        }
    }
    return 0;
}

/* iso_time writes |t| (seconds since 1970) as 2026-01-31T12:00:00Z. */
static void iso_time(char *out, size_t outlen, double t) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, outlen, "unknown");
    }
}

static void report_expiry(const struct tls_store *s, const struct tls_cert *c, double now) {
    const struct cert_config *cc = c->cfg;
    char when[32];
    iso_time(when, sizeof(when), c->not_after);
    double left = c->not_after - now;
    if (left <= 0) {
        log_warning("event=certificate_expired certificate=%s not_after=%s file=%s: served "
                    "anyway; senders that check will refuse it", cc->name, when, cc->cert_path);
    } else if (left < s->expiry_warning) {
        log_warning("event=certificate_expiring certificate=%s not_after=%s days_left=%lld "
                    "file=%s: renew it before then", cc->name, when,
                    (long long)(left / 86400), cc->cert_path);
    }
}

static void report_ocsp(const struct tls_cert *c) {
    const struct cert_config *cc = c->cfg;
    if (cc->ocsp_path == NULL) {
        return;
    }
    char until[32];
    iso_time(until, sizeof(until), (double)c->ocsp_until);
    if (c->ocsp != NULL) {
        log_info("event=ocsp_stapled certificate=%s file=%s valid_until=%s", cc->name,
                 cc->ocsp_path, until);
    } else if (c->ocsp_verdict == OCSP_UNREADABLE) {
        log_warning("event=ocsp_not_stapled certificate=%s reason=unreadable file=%s "
                    "detail=\"%s\": served without a staple", cc->name, cc->ocsp_path,
                    c->ocsp_error);
    } else {
        log_warning("event=ocsp_not_stapled certificate=%s reason=%s file=%s%s%s: served "
                    "without a staple", cc->name, ocsp_verdict_name(c->ocsp_verdict),
                    cc->ocsp_path, c->ocsp_verdict == OCSP_STALE ? " valid_until=" : "",
                    c->ocsp_verdict == OCSP_STALE ? until : "");
    }
}

void tls_store_report(const struct tls_store *s, const struct tls_store *previous) {
    if (s == NULL) {
        return;
    }
    double now = (double)time(NULL);
    for (size_t i = 0; i < s->ncerts; i++) {
        const struct tls_cert *c = &s->certs[i];
        report_expiry(s, c, now);
        report_ocsp(c);
        if (c->next_error[0]) {
            log_warning("event=tlsa_next_unreadable certificate=%s detail=\"%s\": the next "
                        "key's TLSA record is unknown", c->cfg->name, c->next_error);
        }
    }
    dane_report_changes(s, previous);
}

/* ---- choosing a certificate ---- */

/* BoringSSL implements five ECDHE_ECDSA suites; room to spare. */
#define MAX_ECDSA_SUITES 16

/* ecdsa_suites lists the ECDHE_ECDSA suites |ssl| would negotiate: its
 * enabled cipher list (the listener's ciphers), so a suite the client
 * offers but the listener or the library would not pick never earns the
 * ECDSA certificate. Beyond |cap| suites are left out, which can only
 * mean RSA where ECDSA would have worked too. */
static size_t ecdsa_suites(const SSL *ssl, struct tls_suite *out, size_t cap) {
    const STACK_OF(SSL_CIPHER) *list = SSL_get_ciphers(ssl);
    size_t n = 0;
    for (size_t i = 0; list != NULL && i < sk_SSL_CIPHER_num(list) && n < cap; i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        if (SSL_CIPHER_get_auth_nid(c) == NID_auth_ecdsa) {
            out[n].id = SSL_CIPHER_get_protocol_id(c);
            out[n].min_version = SSL_CIPHER_get_min_version(c);
            n++;
        }
    }
    return n;
}

/* staple gives |ssl| the certificate's OCSP response while it is current;
 * one that runs out while the store is in force is dropped (and said
 * once), as a reload would. */
static void staple(SSL *ssl, struct tls_cert *c) {
    if ((int64_t)time(NULL) >= c->ocsp_until) {
        if (atomic_exchange(&c->ocsp_lapse_logged, 1) == 0) {
            char until[32];
            iso_time(until, sizeof(until), (double)c->ocsp_until);
            log_warning("event=ocsp_not_stapled certificate=%s reason=stale file=%s "
                        "valid_until=%s: it ran out while in force; put a new one in place "
                        "and reload", c->cfg->name, c->cfg->ocsp_path, until);
        }
        return;
    }
    /* A failure (memory) only costs the staple. */
    if (!SSL_set_ocsp_response(ssl, c->ocsp, c->ocsp_len)) {
        ERR_clear_error();
    }
}

static enum ssl_select_cert_result_t select_certificate(const SSL_CLIENT_HELLO *hello) {
    SSL *ssl = hello->ssl;
    struct tls_store *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), store_ex_index);
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const struct sni_entry *e = sni_lookup(&s->sni, host);
    if (e == NULL) {
        e = s->fallback;
    }
    if (e == NULL) {
        return ssl_select_cert_error;
    }
    struct tls_hello_view view = {
        .legacy_version = hello->version,
        .suites = hello->cipher_suites,
        .suites_len = hello->cipher_suites_len,
    };
    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms,
                                              &view.sigalgs, &view.sigalgs_len)) {
        view.sigalgs = NULL;
    }
    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_supported_versions,
                                              &view.versions, &view.versions_len)) {
        view.versions = NULL;
    }
    if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_supported_groups,
                                              &view.groups, &view.groups_len)) {
        view.groups = NULL;
    }
    size_t ecdsa = e->cert[SNI_KEY_ECDSA];
    int ecdsa_ok = 0;
    if (ecdsa != SNI_NONE) {
        struct tls_suite suites[MAX_ECDSA_SUITES];
        size_t nsuites = ecdsa_suites(ssl, suites, MAX_ECDSA_SUITES);
        ecdsa_ok = tls_hello_accepts_ecdsa(&view, s->certs[ecdsa].curve, suites, nsuites);
    }
    struct tls_cert *c = &s->certs[sni_choose(e, ecdsa_ok)];
    if (!SSL_set_chain_and_key(ssl, c->chain, c->nchain, c->key, NULL)) {
        return ssl_select_cert_error;
    }
    /* BoringSSL sends a staple only to a client that asked (status_request,
     * RFC 6066 8; in TLS 1.3 in the Certificate message, RFC 8446 4.4.2.1);
     * asking first spares the others a copy of it. */
    const uint8_t *status_request;
    size_t status_request_len;
    if (c->ocsp != NULL &&
        SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_status_request,
                                             &status_request, &status_request_len)) {
        staple(ssl, c);
    }
    return ssl_select_cert_success;
}

/* ---- listener contexts ---- */

/* resumption sets how |ctx| resumes sessions. Its session ID context is
 * the listener's name, so a session made on one listener never resumes
 * on another with other rules (versions, ciphers, require_tls); tickets
 * come from the process's ring (tickets.h), which outlives the reload
 * that rebuilt |ctx|. BoringSSL checks a resumed session's version and
 * cipher against |ctx| as it is now. Returns 1, or 0 (load failed). */
static int resumption(struct load *l, SSL_CTX *ctx, const struct listener_config *lc) {
    uint8_t sid_ctx[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)lc->name, strlen(lc->name), sid_ctx);
    if (!SSL_CTX_set_session_id_context(ctx, sid_ctx, SSL_MAX_SID_CTX_LENGTH)) {
        load_fail(l, lc->line, "out of memory");
        return 0;
    }
    if (l->cfg->tls_session_tickets) {
        tickets_attach(ctx, l->cfg->tls_ticket_rotation);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    return 1;
}

static SSL_CTX *listener_ctx(struct load *l, struct tls_store *s,
                             const struct listener_config *lc) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        load_fail(l, lc->line, "out of memory");
        return NULL;
    }
    SSL_CTX_set_ex_data(ctx, store_ex_index, s);
    SSL_CTX_set0_buffer_pool(ctx, s->pool);
    SSL_CTX_set_min_proto_version(ctx, (uint16_t)lc->min_tls_version);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Retried writes may come from a moved buffer (ours grows while a
     * write waits); partial writes keep each call's size honest. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_select_certificate_cb(ctx, select_certificate);
    if (!resumption(l, ctx, lc)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* BoringSSL refuses renegotiation as a server and has 0-RTT off
     * unless enabled; say so explicitly for readers of this file. */
    SSL_CTX_set_early_data_enabled(ctx, 0);
    /* The defaults by kind: see tls.h. The library's own list would add
     * 3DES (SWEET32) on port 25. */
    const char *ciphers = lc->ciphers;
    if (ciphers == NULL) {
        ciphers = lc->kind == KIND_SMTP ? TLS_SMTP_CIPHERS : TLS_SUBMISSION_CIPHERS;
    }
    if (!SSL_CTX_set_strict_cipher_list(ctx, ciphers)) {
        load_fail(l, lc->line, "[listener %s]: cipher list \"%s\" names a cipher this "
                               "TLS library does not know", lc->name, ciphers);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (l->cfg->groups != NULL && !SSL_CTX_set1_curves_list(ctx, l->cfg->groups)) {
        load_fail(l, lc->line, "[tls]: groups \"%s\" names an unknown group "
                               "(try X25519:P-256:P-384)", l->cfg->groups);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct tls_store *tls_store_new(const struct config *cfg, char *err, size_t errlen) {
    if (store_ex_index < 0) {
        /* First call happens on the main thread before any worker runs. */
        store_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    }
    struct load l = {.cfg = cfg, .err = err, .errlen = errlen};
    struct tls_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "%s: out of memory", cfg->path);
        return NULL;
    }
    s->expiry_warning = cfg->tls_expiry_warning;
    time_t now = time(NULL);
    s->pool = CRYPTO_BUFFER_POOL_new();
    s->certs = calloc(cfg->ncerts ? cfg->ncerts : 1, sizeof(*s->certs));
    s->listener_ctx = calloc(cfg->nlisteners, sizeof(*s->listener_ctx));
    s->nlisteners = cfg->nlisteners;
    int ok = s->pool != NULL && s->certs != NULL && s->listener_ctx != NULL;
    if (!ok) {
        snprintf(err, errlen, "%s: out of memory", cfg->path);
    }
    for (size_t i = 0; ok && i < cfg->ncerts; i++) {
        s->certs[i].cfg = &cfg->certs[i];
        s->ncerts++;
        ok = load_certificate(&l, s, i, now);
    }
    sni_table_sort(&s->sni);
    for (size_t i = 0; ok && i < cfg->ncerts; i++) {
        if (cfg->certs[i].is_default) {
            /* The default serves every name its certificate has, with
             * every key type configured for that name. */
            const char *first = cfg->certs[i].nnames ? cfg->certs[i].names[0] : NULL;
            for (size_t k = 0; first == NULL && k < s->sni.n; k++) {
                const struct sni_entry *e = &s->sni.entries[k];
                if (e->cert[s->certs[i].key_type] == i) {
                    first = e->name;
                }
            }
            s->fallback = sni_lookup(&s->sni, first);
        }
    }
    for (size_t i = 0; ok && i < cfg->nlisteners; i++) {
        if (cfg->listeners[i].tls != TLS_MODE_NONE) {
            s->listener_ctx[i] = listener_ctx(&l, s, &cfg->listeners[i]);
            ok = s->listener_ctx[i] != NULL;
        }
    }
    if (!ok) {
        tls_store_free(s);
        return NULL;
    }
    return s;
}

void tls_store_free(struct tls_store *s) {
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nlisteners; i++) {
        SSL_CTX_free(s->listener_ctx[i]);
    }
    free(s->listener_ctx);
    for (size_t i = 0; i < s->ncerts; i++) {
        for (size_t j = 0; j < s->certs[i].nchain; j++) {
            CRYPTO_BUFFER_free(s->certs[i].chain[j]);
        }
        free(s->certs[i].chain);
        EVP_PKEY_free(s->certs[i].key);
        for (size_t j = 0; j < s->certs[i].nnames; j++) {
            free(s->certs[i].names[j]);
        }
        free(s->certs[i].names);
        free(s->certs[i].ocsp);
    }
    free(s->certs);
    sni_table_free(&s->sni);
    CRYPTO_BUFFER_POOL_free(s->pool);
    free(s);
}

SSL *tls_new_server(const struct tls_store *s, size_t index, int fd) {
    if (s == NULL || index >= s->nlisteners || s->listener_ctx[index] == NULL) {
        return NULL;
    }
    SSL *ssl = SSL_new(s->listener_ctx[index]);
    if (ssl == NULL) {
        return NULL;
    }
    if (!SSL_set_fd(ssl, fd)) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

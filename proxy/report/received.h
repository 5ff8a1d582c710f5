/*
 * received.h - what a Received: header field says about how a message
 * arrived: encrypted or not, the TLS version where it is stated, and
 * who sent it (the "from" clause: HELO, the name the receiver found, the
 * address). Pure; no I/O.
 *
 * Understood (each from its MTA's documented or observed format):
 *   Postfix    from HELO (NAME [IP]) (using TLSv1.3 with cipher ...)
 *              by HOST (Postfix) with ESMTPS id ...
 *   Exim       from NAME ([IP] helo=HELO) by HOST with esmtps (TLS1.3)
 *              tls TLS_AES_256_GCM_SHA384 (Exim 4.96) ...
 *              (older: with esmtps (TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256))
 *   Sendmail   ... with ESMTPS id ... (version=TLSv1.3 cipher=... bits=256
 *              verify=NOT)
 *   Exchange   ... with Microsoft SMTP Server (version=TLS1_2, cipher=...)
 *              (without the comment, or with "(TLS)" alone: see below)
 *   Gmail      ... with ESMTPS id ... (version=TLS1_3 cipher=... bits=...)
 *   RFC 8314   the "tls" clause (tls TLS_AES_128_GCM_SHA256)
 *   this proxy ... with ESMTPS id ... tls TLS_... (TLSv1.3 group X25519
 *              ... port N); plaintext "with ESMTP" or "with SMTP"
 *
 * Evidence of TLS: a "with" protocol of RFC 3848/6531 ending in S or SA
 * (ESMTPS, ESMTPSA, UTF8SMTPS, LMTPS, ...; also SMTPS), a "tls" clause,
 * or a comment stating a version ("using TLSv1.3", "version=TLS1_2", a
 * comment that starts with a version, or "(TLS)"). Evidence of
 * plaintext: the protocol SMTP, ESMTP, ESMTPA, UTF8SMTP(A), LMTP(A), or
 * "Microsoft SMTP Server" without a TLS comment. Evidence of both, or
 * of neither, leaves the header unclassified: nothing is guessed. The
 * first comment of the "from" clause (the sender's TCP information,
 * where the client's HELO may appear) is never read as TLS evidence.
 */
#ifndef SMTP_TLS_PROXY_RECEIVED_H
#define SMTP_TLS_PROXY_RECEIVED_H

#include <stddef.h>

enum received_tls {
    RECEIVED_UNCLASSIFIED = 0,
    RECEIVED_PLAIN = 1,
    RECEIVED_TLS = 2,
};

struct received_info {
    enum received_tls tls;
    char version[16];  /* "TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3";
                        * "" when not stated (and for plaintext) */
    char protocol[40]; /* the "with" clause; "" when none */
    char helo[256];
    char name[256];    /* the sender's name as the receiver found it; "" */
    char ip[64];       /* "" when the header names no address */
    char by[256];      /* the receiving host */
    long long time_ms; /* the date after ';' */
    int has_time;
    const char *why;   /* unclassified: why not */
};

/* received_parse reads the |n| bytes of a Received field's value (after
 * "Received:", folded or not) into *out. */
void received_parse(const char *value, size_t n, struct received_info *out);

/* received_by_is tells whether the header's "by" host is |host|
 * (ASCII case-insensitive, a trailing dot ignored on either side). */
int received_by_is(const struct received_info *r, const char *host);

/* received_version_name normalises a version token ("TLSv1.3",
 * "TLS1_3", "TLS1.3", "tlsv1", "SSLv3") into |out| ("TLSv1.3", "TLSv1",
 * "SSLv3"). Returns 1, or 0 when the token is no TLS/SSL version. */
int received_version_name(const char *tok, size_t n, char *out, size_t out_size);

#endif

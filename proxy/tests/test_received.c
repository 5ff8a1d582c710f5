/*
 * test_received.c - received.h: how each MTA's Received field says TLS
 * or plaintext, and who sent the message.
 *
 * The Postfix fields were written by a real Postfix 3.7 smtpd (with
 * smtpd_tls_received_header = yes and certs/test/mx-rsa.crt), one
 * message sent with and one without STARTTLS (integration-tests/
 * test_report.py makes the same at every run). The others follow each
 * MTA's documented format: Exim's received_header_text default (4.96),
 * sendmail.cf's Received template (8.17), Exchange Online and Gmail
 * fields as their own documentation and headers show them, the RFC 8314
 * 4.3 "tls" clause, and this proxy's own (protocol/headers.c).
 */
#include <stdio.h>

#include "report/received.h"
#include "unit.h"

static struct received_info parse(const char *field) {
    struct received_info r;
    /* Callers give the value after "Received:". */
    const char *v = strncmp(field, "Received:", 9) == 0 ? field + 9 : field;
    received_parse(v, strlen(v), &r);
    return r;
}

static void expect(const char *field, enum received_tls tls, const char *version,
                   const char *helo, const char *name, const char *ip, const char *by, int line) {
    struct received_info r = parse(field);
    if (r.tls != tls || strcmp(r.version, version) != 0 || strcmp(r.helo, helo) != 0 ||
        strcmp(r.name, name) != 0 || strcmp(r.ip, ip) != 0 || strcmp(r.by, by) != 0) {
        unit_fail(__FILE__, line,
                  "got tls=%d version=\"%s\" helo=\"%s\" name=\"%s\" ip=\"%s\" by=\"%s\" (%s)",
                  (int)r.tls, r.version, r.helo, r.name, r.ip, r.by, r.why ? r.why : "");
    }
}

UNIT_TEST(received_postfix_real_headers) {
    expect("Received: from client1.src.test (unknown [127.0.0.1])\r\n"
           "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
           "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n"
           "\t(No client certificate requested)\r\n"
           "\tby backend.test (Postfix) with ESMTPS id C478CA740FB\r\n"
           "\tfor <b@dst.test>; Wed,  2 Dec 2026 00:04:26 +0000 (UTC)",
           RECEIVED_TLS, "TLSv1.3", "client1.src.test", "", "127.0.0.1", "backend.test",
           __LINE__);
    expect("Received: from client0.src.test (unknown [127.0.0.1])\r\n"
           "\tby backend.test (Postfix) with ESMTP id BD8AAA740FB\r\n"
           "\tfor <b@dst.test>; Wed,  2 Dec 2026 00:04:26 +0000 (UTC)",
           RECEIVED_PLAIN, "", "client0.src.test", "", "127.0.0.1", "backend.test", __LINE__);
    struct received_info r = parse(" from a (unknown [127.0.0.1]) by b (Postfix) with ESMTP id X;"
                                   " Wed,  2 Dec 2026 00:04:26 +0000 (UTC)");
    CHECK(r.has_time);
    CHECK_INT(r.time_ms, 1796169866000LL);
}

UNIT_TEST(received_postfix_with_a_name_and_older_cipher_names) {
    expect(" from mail.example.org (mail.example.org [192.0.2.25])\r\n"
           "\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))\r\n"
           "\t(No client certificate requested)\r\n"
           "\tby mx.example.net (Postfix) with ESMTPS id 4VfXyz1abcz9sRq\r\n"
           "\tfor <b@example.net>; Tue, 14 May 2024 10:00:00 +0200 (CEST)",
           RECEIVED_TLS, "TLSv1.2", "mail.example.org", "mail.example.org", "192.0.2.25",
           "mx.example.net", __LINE__);
    expect(" from [192.0.2.1] (unknown [IPv6:2001:db8::25])\r\n"
           "\tby mx.example.net (Postfix) with ESMTPSA id 4Vf; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "", "[192.0.2.1]", "", "2001:db8::25", "mx.example.net", __LINE__);
}

UNIT_TEST(received_exim) {
    /* received_header_text, Exim 4.96: TLS version in a comment after the
     * protocol and the RFC 8314 tls clause. */
    expect(" from mail.example.org ([192.0.2.25] helo=client.example.org)\r\n"
           "\tby mx.example.net with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384\r\n"
           "\t(Exim 4.96)\r\n"
           "\t(envelope-from <a@example.org>)\r\n"
           "\tid 1s6tHk-000Ab1-2x\r\n"
           "\tfor b@example.net;\r\n"
           "\tTue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "TLSv1.3", "client.example.org", "mail.example.org", "192.0.2.25",
           "mx.example.net", __LINE__);
    /* Older Exim (GnuTLS): version:cipher:bits. */
    expect(" from [192.0.2.25] (helo=client.example.org)\r\n"
           "\tby mx.example.net with esmtps (TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256)\r\n"
           "\t(Exim 4.92)\r\n\t(envelope-from <a@example.org>)\r\n\tid 1abc-0001-Xy; Tue, 14 May "
           "2024 10:00:00 +0000",
           RECEIVED_TLS, "TLSv1.2", "client.example.org", "", "192.0.2.25", "mx.example.net",
           __LINE__);
    /* OpenSSL builds: TLSv1:cipher:bits. */
    expect(" from host.example.org ([192.0.2.25]:54321)\r\n"
           "\tby mx.example.net with esmtpsa (TLSv1:AES256-SHA:256) (Exim 4.80)\r\n"
           "\tid 1abc; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "TLSv1", "host.example.org", "", "192.0.2.25", "mx.example.net",
           __LINE__);
    expect(" from mail.example.org ([192.0.2.25] helo=client.example.org)\r\n"
           "\tby mx.example.net with esmtp (Exim 4.96)\r\n"
           "\t(envelope-from <a@example.org>)\r\n\tid 1s6tHk-000Ab1-2x\r\n"
           "\tfor b@example.net; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_PLAIN, "", "client.example.org", "mail.example.org", "192.0.2.25",
           "mx.example.net", __LINE__);
    expect(" from [192.0.2.25] (helo=x) by mx.example.net with smtp (Exim 4.96) id 1a; "
           "Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_PLAIN, "", "x", "", "192.0.2.25", "mx.example.net", __LINE__);
}

UNIT_TEST(received_sendmail) {
    /* sendmail.cf: ... with $r id $i$?{tls_version} (version=${tls_version}
     * cipher=${cipher} bits=${cipher_bits} verify=${verify})$. for $u; $b */
    expect(" from client.example.org (mail.example.org [192.0.2.25])\r\n"
           "\tby mx.example.net (8.17.1.9/8.17.1.9/Debian-2) with ESMTPS id 44EA0Mab012345\r\n"
           "\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT)\r\n"
           "\tfor <b@example.net>; Tue, 14 May 2024 10:00:00 GMT",
           RECEIVED_TLS, "TLSv1.3", "client.example.org", "mail.example.org", "192.0.2.25",
           "mx.example.net", __LINE__);
    expect(" from client.example.org (mail.example.org [192.0.2.25] (may be forged))\r\n"
           "\tby mx.example.net (8.17.1.9/8.17.1.9) with ESMTP id 44EA0Mab012345\r\n"
           "\tfor <b@example.net>; Tue, 14 May 2024 10:00:00 +0200",
           RECEIVED_PLAIN, "", "client.example.org", "mail.example.org", "192.0.2.25",
           "mx.example.net", __LINE__);
    expect(" from localhost (root@localhost)\r\n"
           "\tby mx.example.net (8.17.1.9/8.17.1.9/Submit) id 44EA0Mab; Tue, 14 May 2024 "
           "10:00:00 GMT",
           RECEIVED_UNCLASSIFIED, "", "localhost", "localhost", "", "mx.example.net", __LINE__);
}

UNIT_TEST(received_exchange) {
    expect(" from EUR05-AM6-obe.outbound.protection.outlook.com (2a01:111:f400:7e1b::200)\r\n"
           " by mx.example.net with Microsoft SMTP Server (version=TLS1_2,\r\n"
           " cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7544.18 via Frontend\r\n"
           " Transport; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "TLSv1.2", "EUR05-AM6-obe.outbound.protection.outlook.com", "",
           "2a01:111:f400:7e1b::200", "mx.example.net", __LINE__);
    expect(" from EXCH01.corp.example (10.0.0.5) by EXCH02.corp.example (10.0.0.6) with "
           "Microsoft SMTP Server (TLS) id 14.3.123.3; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "", "EXCH01.corp.example", "", "10.0.0.5", "EXCH02.corp.example",
           __LINE__);
    expect(" from EXCH01.corp.example (10.0.0.5) by EXCH02.corp.example (10.0.0.6) with "
           "Microsoft SMTP Server id 8.3.485.1; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_PLAIN, "", "EXCH01.corp.example", "", "10.0.0.5", "EXCH02.corp.example",
           __LINE__);
    /* Outlook's internal hops name no SMTP at all. */
    expect(" from AM0PR01MB1234.eurprd01.prod.exchangelabs.com (2603:10a6:208::12) by "
           "AM0PR01MB5678.eurprd01.prod.exchangelabs.com with HTTPS; Tue, 14 May 2024 "
           "10:00:00 +0000",
           RECEIVED_UNCLASSIFIED, "", "AM0PR01MB1234.eurprd01.prod.exchangelabs.com", "",
           "2603:10a6:208::12", "AM0PR01MB5678.eurprd01.prod.exchangelabs.com", __LINE__);
}

UNIT_TEST(received_gmail) {
    expect(" from mail.example.org (mail.example.org. [192.0.2.25])\r\n"
           "        by mx.google.com with ESMTPS id a640c23a62f3a-a5a5b1c2d3esi123456766b.12.2024.05."
           "14.03.00.00\r\n"
           "        for <b@gmail.com>\r\n"
           "        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);\r\n"
           "        Tue, 14 May 2024 03:00:00 -0700 (PDT)",
           RECEIVED_TLS, "TLSv1.3", "mail.example.org", "mail.example.org", "192.0.2.25",
           "mx.google.com", __LINE__);
    expect(" from mail.example.org (mail.example.org. [192.0.2.25])\r\n"
           "        by mx.google.com with SMTP id x12si1234567wrb.100.2024.05.14.03.00.00\r\n"
           "        for <b@gmail.com>; Tue, 14 May 2024 03:00:00 -0700 (PDT)",
           RECEIVED_PLAIN, "", "mail.example.org", "mail.example.org", "192.0.2.25",
           "mx.google.com", __LINE__);
}

UNIT_TEST(received_rfc8314_tls_clause) {
    expect(" from client.example (client.example [192.0.2.9]) by mx.example.net with ESMTP "
           "tls TLS_AES_128_GCM_SHA256; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_UNCLASSIFIED, "", "client.example", "client.example", "192.0.2.9",
           "mx.example.net", __LINE__); /* ESMTP says plaintext, tls says TLS */
    expect(" from client.example ([192.0.2.9]) by mx.example.net tls TLS_AES_128_GCM_SHA256; "
           "Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "", "client.example", "", "192.0.2.9", "mx.example.net", __LINE__);
}

UNIT_TEST(received_this_proxy) {
    expect(" from client.src.test (unknown [127.0.0.1])\r\n"
           "\tby mx.example.test (smtp-tls-proxy) with ESMTPS id 6632110a0100002a\r\n"
           "\ttls TLS_AES_256_GCM_SHA384 (TLSv1.3 group X25519 sni mx.example.test\r\n"
           "\tport 25); Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "TLSv1.3", "client.src.test", "", "127.0.0.1", "mx.example.test",
           __LINE__);
    expect(" from client.src.test (unknown [IPv6:::1])\r\n"
           "\tby mx.example.test (smtp-tls-proxy) with ESMTP id 6632110a0100002a;\r\n"
           "\tTue, 14 May 2024 10:00:00 +0000",
           RECEIVED_PLAIN, "", "client.src.test", "", "::1", "mx.example.test", __LINE__);
    expect(" from old.client (unknown [192.0.2.1]) by mx.example.test (smtp-tls-proxy) with "
           "SMTP id 1; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_PLAIN, "", "old.client", "", "192.0.2.1", "mx.example.test", __LINE__);
    /* With a confirmed name in place of "unknown". */
    expect(" from client.src.test (mail.src.test [192.0.2.1]) by mx.example.test "
           "(smtp-tls-proxy) with ESMTPSA id 1 tls TLS_AES_128_GCM_SHA256 (TLSv1.2 port 587); "
           "Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_TLS, "TLSv1.2", "client.src.test", "mail.src.test", "192.0.2.1",
           "mx.example.test", __LINE__);
}

UNIT_TEST(received_unclassified_never_guessed) {
    /* No protocol, no TLS statement. */
    expect(" by mx.example.net; Tue, 14 May 2024 10:00:00 +0000", RECEIVED_UNCLASSIFIED, "", "",
           "", "", "mx.example.net", __LINE__);
    expect(" from x (y [192.0.2.1]) by mx with LOCAL id 1; Tue, 14 May 2024 10:00:00 +0000",
           RECEIVED_UNCLASSIFIED, "", "x", "y", "192.0.2.1", "mx", __LINE__);
    /* A plaintext protocol with a TLS comment: contradictory. */
    expect(" from x (y [192.0.2.1]) (using TLSv1.3 with cipher X) by mx with ESMTP id 1",
           RECEIVED_UNCLASSIFIED, "", "x", "y", "192.0.2.1", "mx", __LINE__);
    expect("", RECEIVED_UNCLASSIFIED, "", "", "", "", "", __LINE__);
    expect(" garbage (((( [", RECEIVED_UNCLASSIFIED, "", "", "", "", "", __LINE__);
}

UNIT_TEST(received_client_text_is_no_tls_evidence) {
    /* The first comment of the from clause carries the client's HELO
     * (Exim) or its name: "TLS" or "version=" there states nothing. */
    expect(" from [192.0.2.1] (helo=version=TLSv1.3) by mx with esmtp (Exim 4.96) id 1",
           RECEIVED_PLAIN, "", "version=TLSv1.3", "", "192.0.2.1", "mx", __LINE__);
    expect(" from TLS (TLS [192.0.2.1]) by mx (Postfix) with ESMTP id 1", RECEIVED_PLAIN, "",
           "TLS", "TLS", "192.0.2.1", "mx", __LINE__);
    /* A version-like host name is no version. */
    expect(" from a (b [192.0.2.1]) (tls1.example.org) by mx with ESMTP id 1", RECEIVED_PLAIN, "",
           "a", "b", "192.0.2.1", "mx", __LINE__);
}

UNIT_TEST(received_version_names) {
    char v[16];
    static const char *const in[] = {"TLSv1.3", "TLS1_3", "TLS1.3", "tlsv1.2", "TLSv1", "TLS1_0",
                                     "TLSv1.0", "SSLv3",  "SSL3"};
    static const char *const want[] = {"TLSv1.3", "TLSv1.3", "TLSv1.3", "TLSv1.2", "TLSv1",
                                       "TLSv1",   "TLSv1",   "SSLv3",   "SSLv3"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        v[0] = '\0';
        if (!received_version_name(in[i], strlen(in[i]), v, sizeof(v)) || strcmp(v, want[i])) {
            unit_fail(__FILE__, __LINE__, "%s -> %s, want %s", in[i], v, want[i]);
        }
    }
    static const char *const bad[] = {"TLS", "TLSv", "TLSv2", "TLSv1.", "TLSv1.3x", "tls1.example",
                                      "SSL", "X25519"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (received_version_name(bad[i], strlen(bad[i]), v, sizeof(v))) {
            unit_fail(__FILE__, __LINE__, "%s taken as %s", bad[i], v);
        }
    }
}

UNIT_TEST(received_by_host_matches) {
    struct received_info r = parse(" from a by MX.Example.NET. with ESMTP id 1");
    CHECK(received_by_is(&r, "mx.example.net"));
    CHECK(received_by_is(&r, "mx.example.net."));
    CHECK(!received_by_is(&r, "mx.example"));
    CHECK(!received_by_is(&r, ""));
}

/*
 * dane.h - DANE for the proxy's certificates (RFC 7672): the TLSA records
 * to publish, and the reload's check that none was forgotten.
 *
 * Records are DANE-EE SPKI SHA2-256 ("3 1 1", protocol/tlsa.h), the form
 * RFC 7672 3.1.1 recommends: a renewal with the same key needs no DNS
 * change. A new key does, and before it is served (RFC 7671 8.1): put it
 * in next_key (or its certificate in next_cert), publish what `tlsa`
 * prints, wait for the TTL, then switch key and next_key.
 */
#ifndef SMTP_TLS_PROXY_DANE_H
#define SMTP_TLS_PROXY_DANE_H

struct tls_store;

/* The port of the records the reload's warnings name: DANE for SMTP is
 * for the MX hosts' port 25 (RFC 7672 2.2.3), whatever the proxy's
 * listeners bind (a NAT or a load balancer may be in front). */
#define DANE_SMTP_PORT 25

/* dane_main is `smtp-tls-proxy [-c FILE] tlsa [-c FILE] [--port N]`:
 * |argv[0]| is "tlsa"; |config_path| is a -c given before it (NULL: the
 * embedded default). Loads the configuration and its certificates as a
 * reload would and prints, for every name of every certificate, its TLSA
 * record, and the record of the next key where one is configured.
 * Returns the exit code: 0, 1 for a configuration or file error, 2 for
 * bad usage. */
int dane_main(const char *config_path, int argc, char **argv);

/* dane_report_changes logs, at a reload from |before| to |now|, every
 * certificate whose key changed: a warning with the records to publish
 * now (event=tlsa_publish_now, one per name) unless |before| announced
 * the new key as its next_key/next_cert, when an info line says the
 * rollover happened and the old records may go once their TTL has
 * passed (event=tlsa_rollover). |before| NULL: nothing. */
void dane_report_changes(const struct tls_store *now, const struct tls_store *before);

#endif

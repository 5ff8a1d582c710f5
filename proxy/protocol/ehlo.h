/*
 * ehlo.h - rewriting the backend's EHLO reply (ARCHITECTURE.md §4).
 *
 * The proxy owns TLS and the client's identity, so capabilities that would
 * let a client go around it are removed, STARTTLS is offered by the proxy
 * itself, and SIZE leaves room for the headers the proxy injects.
 */
#ifndef SMTP_TLS_PROXY_EHLO_H
#define SMTP_TLS_PROXY_EHLO_H

#include <stddef.h>

#include "core/buffer.h"
#include "protocol/smtp_cmd.h"

struct ehlo_policy {
    int offer_starttls; /* add STARTTLS to the list */
    int hide_auth;      /* drop AUTH (RFC 4954 4: not before TLS) */
    size_t size_reserve; /* octets the injected headers may take */
};

/* ehlo_rewrite writes the rewritten form of a complete 250 EHLO reply
 * |reply| (|len| bytes, lines ending in CRLF, as smtp_reply collects
 * them) to |out|. Removed: STARTTLS, CHUNKING, BINARYMIME (no BDAT end to
 * end), XCLIENT, XFORWARD (the backend trusts the proxy's address), AUTH
 * when policy says so, and lines with no keyword at all. SIZE n becomes n - size_reserve (never below 1;
 * "SIZE" and "SIZE 0" mean no limit and stay). Order is kept; STARTTLS,
 * when offered, comes last. Returns 1, or 0 when |out| cannot grow. */
int ehlo_rewrite(const char *reply, size_t len, const struct ehlo_policy *policy,
                 struct buffer *out);

/* EHLO keywords the session acts on: the SMTP_EXT_* flags of smtp_cmd.h
 * (they lengthen command lines) and PIPELINING (RFC 2920). */
#define EHLO_PIPELINING 0x100

/* ehlo_extensions returns the flags for the keywords of the complete 250
 * EHLO reply |reply| (|len| bytes): SMTP_EXT_SIZE, SMTP_EXT_DSN,
 * SMTP_EXT_AUTH, SMTP_EXT_8BITMIME, SMTP_EXT_SMTPUTF8, EHLO_PIPELINING.
 * The first line is the greeting text, never a keyword. */
unsigned ehlo_extensions(const char *reply, size_t len);

#endif

/*
 * ehlo.h - rewriting the backend's EHLO reply (DESIGN 3.1).
 *
 * The proxy owns TLS and the client's identity, so capabilities that would
 * let a client go around it are removed, STARTTLS is offered by the proxy
 * itself, and SIZE leaves room for the headers the proxy injects.
 */
#ifndef SMTP_TLS_PROXY_EHLO_H
#define SMTP_TLS_PROXY_EHLO_H

#include <stddef.h>

#include "buffer.h"

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

#endif

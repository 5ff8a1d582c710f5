/*
 * geoip.h - country and autonomous system of a client address, from
 * MaxMind DB files read with libmaxminddb (memory-mapped, read-only, so
 * every worker thread may look up at once).
 *
 * Understands the GeoLite2 schemas (country.iso_code, falling back to
 * registered_country.iso_code; autonomous_system_number and
 * autonomous_system_organization) and the flat schema of the free
 * ip-location-db databases (country_code). A miss, a missing database or
 * an odd value leaves the field empty: GeoIP never affects the mail.
 */
#ifndef SMTP_TLS_PROXY_GEOIP_H
#define SMTP_TLS_PROXY_GEOIP_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/addr.h"

struct config;

struct geoip;

struct geoip_result {
    char country[3];     /* ISO 3166-1 alpha-2, "" when unknown */
    unsigned long asn;   /* 0 when unknown */
    char as_org[96];     /* "" when unknown; raw, sanitise before writing */
};

/* geoip_open opens the databases named in |cfg| ([geoip] country_db and
 * asn_db). A file that does not exist is logged and left out (the field
 * stays empty); one that exists but cannot be read as a MaxMind DB is an
 * error ("file:line: reason" in |err|, NULL returned). A config without
 * [geoip] gives a handle that finds nothing. */
struct geoip *geoip_open(const struct config *cfg, char *err, size_t errlen);

/* geoip_lookup fills |out| for address |a| (always succeeds; nothing is
 * found for non-IP addresses). */
void geoip_lookup(const struct geoip *g, const struct net_addr *a, struct geoip_result *out);

void geoip_close(struct geoip *g);

#endif

/*
 * client_table.h - live sessions per client address, shared by all
 * workers, for the per-client connection cap (ARCHITECTURE.md §7): without it one
 * host could hold every connection slot and lock every other sender out.
 *
 * Addresses are compared as IPv6 (IPv4 as ::ffff:a.b.c.d), ports ignored.
 * Memory is bounded by the number of live sessions.
 */
#ifndef SMTP_TLS_PROXY_CLIENT_TABLE_H
#define SMTP_TLS_PROXY_CLIENT_TABLE_H

#include "core/addr.h"

struct client_table;

/* client_table_new returns an empty table, or NULL. */
struct client_table *client_table_new(void);

/* client_table_enter counts one more session from |a| when it has fewer
 * than |limit| already. Returns 1 when counted, 0 when at the limit (or
 * out of memory: then the connection is refused rather than uncounted).
 * Addresses that are not IP are always counted under one key. */
int client_table_enter(struct client_table *t, const struct net_addr *a, unsigned limit);

/* client_table_leave counts one session from |a| less. */
void client_table_leave(struct client_table *t, const struct net_addr *a);

/* client_table_count returns the live sessions from |a|. */
unsigned client_table_count(struct client_table *t, const struct net_addr *a);

void client_table_free(struct client_table *t);

#endif

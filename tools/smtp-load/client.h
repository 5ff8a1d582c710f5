/*
 * client.h - smtp-load's client: drive SMTP load at a server with
 * --threads libev loops and print the report.
 */
#ifndef SMTP_LOAD_CLIENT_H
#define SMTP_LOAD_CLIENT_H

#include "options.h"

/* client_run runs the load |o| describes until -n, -d, a signal or
 * --hold ends it, prints the report on stdout and returns the exit
 * status: 0 no error, 1 errors (or the run could not start). */
int client_run(const struct load_opts *o);

#endif

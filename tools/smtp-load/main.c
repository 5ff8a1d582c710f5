/*
 * main.c - smtp-load: a TLS-capable SMTP load generator (the client)
 * and a fast SMTP backend (--sink), for `make bench`. See README.md.
 */
#include <openssl/ssl.h>
#include <stdio.h>

#include "client.h"
#include "options.h"
#include "sink.h"

int main(int argc, char **argv) {
    struct load_opts o;
    char why[512];
    switch (opts_parse(argc, argv, &o, why, sizeof(why))) {
    case OPTS_HELP:
        fputs(opts_help(), stdout);
        return 0;
    case OPTS_VERSION:
        printf("smtp-load %s (%s)\n", LOAD_VERSION, OpenSSL_version(OPENSSL_VERSION));
        return 0;
    case OPTS_USAGE:
        fprintf(stderr, "smtp-load: %s\n(smtp-load --help for the options)\n", why);
        return 2;
    case OPTS_RUN:
    default:
        break;
    }
    return o.sink ? sink_run(&o) : client_run(&o);
}

/*
 * report.h - smtp-tls-proxy report: the encrypted share of accepted mail,
 * from the proxy's own logs (text or JSON, plain or gzip, files or
 * standard input) or from mail already received (an mbox file or a
 * maildir, by each message's Received field). README "Reporting".
 */
#ifndef SMTP_TLS_PROXY_REPORT_H
#define SMTP_TLS_PROXY_REPORT_H

#include <stdio.h>

/* report_main runs "report" with its arguments (argv[0] is "report"),
 * writing the report to |out| and complaints to |err|. Returns the exit
 * status: 0, 1 when an input could not be read, 2 for a usage error. */
int report_run(int argc, char **argv, FILE *out, FILE *err);

/* report_main is report_run on stdout and stderr. */
int report_main(int argc, char **argv);

#endif

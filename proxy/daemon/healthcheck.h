/*
 * healthcheck.h - smtp-tls-proxy healthcheck: asks the running proxy's
 * /healthz (the [metrics] endpoint of the configuration) and exits 0 when
 * it answers 200. For a container's HEALTHCHECK, where the image has no
 * HTTP client: the proxy binary is the probe (Dockerfile).
 */
#ifndef SMTP_TLS_PROXY_HEALTHCHECK_H
#define SMTP_TLS_PROXY_HEALTHCHECK_H

/* healthcheck_main runs "healthcheck [-c FILE] [--timeout SECONDS]"
 * (argv[0] is "healthcheck"). Prints one line saying what it found.
 * Returns 0 (healthy: 200) or 1 (anything else: no [metrics] address, a
 * bad configuration, no answer, 503 while draining), the two codes a
 * container HEALTHCHECK knows. */
int healthcheck_main(int argc, char **argv);

#endif

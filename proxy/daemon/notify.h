/*
 * notify.h - the service manager's readiness protocol (sd_notify(3),
 * libsystemd). systemd's Type=notify (and, from systemd 253, Type=
 * notify-reload) waits for READY=1 before it calls the service started,
 * and shows STATUS= in `systemctl status`. Every call is a no-op when
 * NOTIFY_SOCKET is not set: outside systemd nothing is sent.
 *
 * Under privilege separation the process systemd started may be the
 * privileged parent while these messages come from the proxy child: the
 * unit says NotifyAccess=all (configs/systemd/smtp-tls-proxy.service).
 */
#ifndef SMTP_TLS_PROXY_NOTIFY_H
#define SMTP_TLS_PROXY_NOTIFY_H

/* notify_ready says READY=1 with STATUS=|status| (NULL: none): every
 * listener accepts. Also the end of a reload, good or not. */
void notify_ready(const char *status);

/* notify_reloading says RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC
 * now), as Type=notify-reload expects at the start of a reload. */
void notify_reloading(void);

/* notify_stopping says STOPPING=1: a graceful stop has begun. */
void notify_stopping(void);

#endif

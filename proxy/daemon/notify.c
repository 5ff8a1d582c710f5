/*
 * notify.c - READY, RELOADING and STOPPING for the service manager (see
 * notify.h), through libsystemd's sd_notify.
 */
#include "daemon/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "core/log.h"

/* send_state sends |state|; a failure is logged at debug level only: the
 * service manager's socket going away must not disturb mail. NOTIFY_SOCKET
 * stays in the environment (unset_environment 0) so that a child the
 * proxy runs (privilege separation) can still send. */
static void send_state(const char *state) {
    if (getenv("NOTIFY_SOCKET") == NULL) {
        return;
    }
    int r = sd_notify(0, state);
    if (r < 0) {
        log_debug("event=notify_failed errno=%d", -r);
    }
}

void notify_ready(const char *status) {
    char msg[512];
    if (status != NULL) {
        snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
    } else {
        snprintf(msg, sizeof(msg), "READY=1");
    }
    send_state(msg);
}

void notify_reloading(void) {
    struct timespec ts;
    char msg[96];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    send_state(msg);
}

void notify_stopping(void) {
    send_state("STOPPING=1");
}

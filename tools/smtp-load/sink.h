/*
 * sink.h - `smtp-load --sink`: a fast SMTP backend that counts what it
 * receives and keeps nothing.
 */
#ifndef SMTP_LOAD_SINK_H
#define SMTP_LOAD_SINK_H

#include "options.h"

/* sink_run listens where |o| says, serves until SIGTERM/SIGINT, prints
 * the counts and returns the exit status (0; 1 when it cannot listen). */
int sink_run(const struct load_opts *o);

#endif

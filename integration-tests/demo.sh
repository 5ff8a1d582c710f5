#!/bin/sh
# demo.sh - the proxy on its embedded default configuration (the same as
# configs/loopback.conf) in front of a demo backend: Postfix's smtp-sink on
# 127.0.0.1:10026, which writes every message it receives to a file.
# Runs in the foreground; Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."
MAILDIR=${DEMO_MAILDIR:-/tmp/smtp-tls-proxy-demo}
mkdir -p "$MAILDIR"
chmod 1777 "$MAILDIR"
USER_ARGS=""
[ "$(id -u)" -eq 0 ] && USER_ARGS="-u nobody"
# shellcheck disable=SC2086
/usr/sbin/smtp-sink $USER_ARGS -d "$MAILDIR/%Y%m%d%H%M%S." 127.0.0.1:10026 20 &
SINK=$!
trap 'kill $SINK 2>/dev/null; wait $SINK 2>/dev/null || true' EXIT INT TERM
cat <<TXT
smtp-tls-proxy demo
  proxy:    embedded default configuration (= configs/loopback.conf)
            127.0.0.1:10025 smtp (STARTTLS offered), 10587 submission
            (STARTTLS required), 10465 submissions (implicit TLS)
  backend:  smtp-sink on 127.0.0.1:10026, messages written to $MAILDIR/
Send a message from another terminal:
  swaks --server 127.0.0.1:10025 --tls --from a@example.org --to b@example.net \\
        --header "X-TLS-Status: forged by the client"
then read it:  cat $MAILDIR/*
Ctrl-C stops the demo.
TXT
proxy/smtp-tls-proxy

"""Test peers for the smtp-tls-proxy integration tests (stdlib only).

This package starts and stops the *other* parties of an integration test:

* :class:`SmtpSink` -- Postfix's ``smtp-sink`` as a dumb backend that
  accepts (or, on request, rejects) everything and dumps every mail
  transaction to a file, so a test can see exactly what the proxy relayed.
* :class:`PostfixInstance` -- a private, throw-away *real* Postfix
  (``master`` + ``smtpd`` + queue + ``smtp`` client) acting as the legacy
  backend MTA.  It forwards accepted mail to a relayhost (typically an
  :class:`SmtpSink`), so the mail that Postfix accepted can be inspected.
  It is fully isolated from the system Postfix (own config, queue, data
  directory, pid/lock files, log file and ports) and never touches
  ``/etc/postfix`` or ``/var/spool/postfix``.
* :func:`free_port`, :func:`wait_port`, :func:`wait_listening` and
  :func:`ipv6_loopback_available` -- small helpers.

Typical use::

    import tempfile, shutil, smtplib
    from peers import SmtpSink, PostfixInstance

    tmp = tempfile.mkdtemp()
    try:
        with SmtpSink(tmp + "/sink") as sink, \\
             PostfixInstance(tmp + "/mta", relayhost=sink) as mta:
            with smtplib.SMTP(mta.smtpd_host, mta.smtpd_port) as s:
                s.sendmail("a@example.org", ["b@example.net"], b"Subject: x\\r\\n\\r\\nhi\\r\\n")
            msg = sink.wait_messages(1)[0]
            assert msg["recipients"] == ["b@example.net"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

Everything here must run as root (smtp-sink drops privileges to ``nobody``,
Postfix's master runs as root and its daemons as ``postfix``).  All waits
are bounded polling loops; every timeout raises :class:`PeerError` with
diagnostics (log tails) in the message.

The package is split by what each part does: ``peers.process`` (ports,
bounded waits, /proc, the pty runner, the leftover-peer safety net),
``peers.sink`` (:class:`SmtpSink`, :func:`parse_sink_dump`) and
``peers.postfix`` (:class:`PostfixInstance`); import from ``peers``.
"""

# The private helpers too: mta_peers.py and test_peers_selfcheck.py use some.
from .haproxy import HAPROXY, HaproxyInstance  # noqa: F401
from .redis import REDIS_SERVER, RedisServer  # noqa: F401
from .postfix import POSTCONF, POSTFIX, PostfixInstance  # noqa: F401
from .process import (PeerError, _family, _iterations, _listening_inodes,  # noqa: F401
                      _make_traversable, _pid_alive, _pids_in_pgrp, _proc_state, _run_pty,
                      _socket_inodes_of, _strip_brackets, _tail, format_hostport, free_port,
                      ipv6_loopback_available, wait_listening, wait_port)
from .sink import SMTP_SINK, SmtpSink, parse_sink_dump  # noqa: F401

__all__ = [
    "PeerError",
    "free_port",
    "wait_port",
    "wait_listening",
    "ipv6_loopback_available",
    "format_hostport",
    "parse_sink_dump",
    "SmtpSink",
    "PostfixInstance",
    "HaproxyInstance",
    "RedisServer",
]

"""Postfix's smtp-sink as a test backend, and the parser of its dumps."""

import email
import email.policy
import os
import pwd
import re
import subprocess
import time

from .process import (_POLL_INTERVAL, PeerError, _iterations, _make_traversable, _running,
                      _strip_brackets, _tail, format_hostport, free_port, wait_listening)

SMTP_SINK = "/usr/sbin/smtp-sink"


_SINK_META_RE = re.compile(rb"^(X-[A-Za-z0-9-]+): ?(.*)$")


def parse_sink_dump(raw):
    """Parse one smtp-sink ``-d`` dump file (bytes) into a dict.

    Dump file layout (observed with Postfix 3.7 smtp-sink, every line
    ends in ``\\n``; all ``\\r`` bytes of the DATA stream are dropped)::

        [optional -S start-string]
        X-Client-Addr: 127.0.0.1            (IPv6: "ipv6:::1")
        X-Client-Proto: ESMTP               (SMTP after HELO, ESMTP after EHLO)
        X-Helo-Args: client.example         (only if HELO/EHLO was sent)
        X-Mail-Args: <a@example.org> SIZE=123
        X-Rcpt-Args: <b@example.net>        (one line per accepted RCPT)
        Received: from client.example ([127.0.0.1])
        \\tby smtp-sink (smtp-sink) with ESMTP id 59c058d2;
        \\tSun, 22 Nov 2026 11:28:55 +0000 (UTC)
        <message header and body, dot-unstuffed, CRLF -> LF>
        <one extra empty line: the "\\n" of the terminating ".\\r\\n">

    Returned keys:

    ``meta``
        dict of the smtp-sink ``X-`` lines with lower-cased names
        (``x-client-addr``, ``x-client-proto``, ``x-helo-args``,
        ``x-mail-args``, ``x-rcpt-args``) and ``str`` values.
        ``x-rcpt-args`` is *always* a list (one entry per RCPT, in order);
        any other name that happens to repeat also becomes a list.
    ``data``
        the message exactly as the client sent it after un-dot-stuffing,
        except that smtp-sink stores LF line ends: every ``\\r`` byte was
        removed by smtp-sink (CRLF -> LF; a bare CR vanishes, a bare LF
        stays).  ``bytes``; ``b""`` for an empty message.
    ``data_crlf``
        ``data`` with every LF turned into CRLF (what was on the wire if
        the client sent proper CRLF lines).
    ``message``
        ``email.message.Message`` parsed from ``data`` (compat32 policy),
        e.g. ``m["message"].get_all("Received")``.
    ``sender`` / ``recipients``
        the address inside ``<...>`` of ``x-mail-args`` / of each
        ``x-rcpt-args`` entry (ESMTP parameters stripped).
    ``received``
        smtp-sink's own 3-line ``Received:`` header (``str``, with LFs).
    ``prefix``
        bytes before ``X-Client-Addr`` (the ``-S`` start string, if any).
    """
    start = raw.find(b"X-Client-Addr:")
    if start < 0:
        raise ValueError("not an smtp-sink dump (no X-Client-Addr): %r"
                         % raw[:200])
    prefix, rest = raw[:start], raw[start:]
    lines = rest.split(b"\n")
    meta = {}
    i = 0
    while i < len(lines) and not lines[i].startswith(b"Received:"):
        m = _SINK_META_RE.match(lines[i])
        if not m:
            raise ValueError("unexpected smtp-sink header line %r" % lines[i])
        name = m.group(1).decode("ascii").lower()
        value = m.group(2).decode("utf-8", "surrogateescape")
        if name == "x-rcpt-args":
            meta.setdefault(name, []).append(value)
        elif name in meta:
            if not isinstance(meta[name], list):
                meta[name] = [meta[name]]
            meta[name].append(value)
        else:
            meta[name] = value
        i += 1
    if i >= len(lines):
        raise ValueError("smtp-sink dump without its Received: header")
    recv = [lines[i]]
    i += 1
    while i < len(lines) and lines[i].startswith(b"\t") and len(recv) < 3:
        recv.append(lines[i])
        i += 1
    body = b"\n".join(lines[i:])
    # smtp-sink writes the LF of the final ".\r\n" as an extra empty line.
    if body.endswith(b"\n"):
        body = body[:-1]
    meta.setdefault("x-rcpt-args", [])

    def addr(args):
        m = re.match(r"\s*<([^>]*)>", args)
        return m.group(1) if m else args.split()[0] if args.split() else ""

    mail_args = meta.get("x-mail-args", "")
    if isinstance(mail_args, list):
        mail_args = mail_args[0]
    return {
        "meta": meta,
        "data": body,
        "data_crlf": body.replace(b"\n", b"\r\n"),
        "message": email.message_from_bytes(body, policy=email.policy.compat32),
        "sender": addr(mail_args),
        "recipients": [addr(a) for a in meta["x-rcpt-args"]],
        "received": b"\n".join(recv).decode("utf-8", "surrogateescape"),
        "prefix": prefix,
    }


class SmtpSink:
    """Postfix ``smtp-sink`` as a test backend that dumps every message.

    ``SmtpSink(workdir, host="127.0.0.1", port=None, extra_args=())``

    ``start()`` (or ``with SmtpSink(...) as sink:``) runs::

        smtp-sink -u nobody -d <workdir>/dump/%M. [extra_args] <host>:<port> 10

    (``[::1]:<port>`` for IPv6), picks a free port when ``port`` is None
    and waits until it listens.  ``stop()`` terminates it (bounded, SIGKILL
    fallback).  Attributes: ``host``, ``port``, ``workdir``, ``dump_dir``,
    ``log_path`` (smtp-sink's stdout+stderr), ``proc`` (``Popen``).
    ``workdir`` is created if needed; it is made searchable by others
    (``o+x``) because smtp-sink writes the dumps as user ``nobody``.  Use
    one workdir per sink (a PostfixInstance may share it).

    One dump file is written per *completed* mail transaction (after the
    final ``.``); smtp-sink creates the file at ``MAIL FROM`` and unlinks
    it on RSET/disconnect, so :meth:`messages` only returns files that
    smtp-sink no longer has open (checked through ``/proc/<pid>/fd``).
    The sink answers ``250`` to everything unless told otherwise; it
    advertises XCLIENT, XFORWARD and AUTH and answers 250 to them without
    acting on them (``X-Client-Addr`` stays the real peer address).
    If you need the port before starting (e.g. to configure a
    :class:`PostfixInstance` relayhost first), pass ``port=free_port()``.

    Making it reject (``extra_args``; all verified against smtp-sink 3.7):

    * RCPT with 550::

          SmtpSink(d, extra_args=("-f", "RCPT",
                                  "-B", "550 5.1.1 Recipient address rejected"))

      ``-f CMDS`` rejects the listed commands with the *hard* reply, whose
      text ``-B`` sets (default ``500 5.3.0 Error: command failed``).
      With every RCPT rejected the client's DATA gets ``503`` and nothing
      is dumped.
    * RCPT with a temporary error: ``("-r", "RCPT", "-b", "450 4.2.0 Try later")``
      (``-r CMDS`` = soft reply, text set with ``-b``, default
      ``450 4.3.0 Error: command failed``).
    * DATA command: ``("-f", "DATA", "-B", "554 5.7.1 No thanks")`` --
      nothing is dumped.
    * End of data (the reply to the final ``.``):
      ``("-f", ".", "-B", "554 5.7.1 Message rejected")``.  CAVEAT: the
      message is still dumped (smtp-sink writes the file before it
      answers the dot), so ``messages()`` shows it although the client
      got 554.
    * Several commands at once: ``("-f", "RCPT,DATA", ...)``.  There is
      only one hard and one soft reply text per sink; it cannot reject
      individual recipients.
    * Other useful options: ``-q CMDS`` (disconnect without reply),
      ``-Q CMDS`` (421 and disconnect; ``CONNECT`` works for the
      greeting), ``-w SECS`` (delay the DATA reply), ``-W CMD:SECS``,
      ``-A SECS`` (550 and disconnect SECS after DATA), ``-C``/``-F``
      (don't announce XCLIENT/XFORWARD), ``-e`` (no ESMTP),
      ``-h NAME`` (greeting hostname), ``-L`` (LMTP).
      ``-f``/``-r`` also turn off PIPELINING in the EHLO reply.
    Pass ``verbose=True`` to add ``-v`` (SMTP conversation in ``log_path``).
    """

    def __init__(self, workdir, host="127.0.0.1", port=None, extra_args=(),
                 user="nobody", verbose=False, backlog=10):
        self.workdir = os.path.abspath(workdir)
        self.host = _strip_brackets(host)
        self.port = port
        self.extra_args = tuple(extra_args)
        self.user = user
        self.verbose = verbose
        self.backlog = backlog
        self.dump_dir = os.path.join(self.workdir, "dump")
        self.log_path = os.path.join(self.workdir, "smtp-sink.log")
        self.proc = None
        self._log_file = None
        self._owns_dump_dir = False
        self._incomplete = set()   # (dev, ino) of files open when stopped

    # -- lifecycle ---------------------------------------------------------

    @property
    def address(self):
        """``(host, port)`` tuple, e.g. for ``smtplib.SMTP(*sink.address)``."""
        return (self.host, self.port)

    @property
    def relayhost(self):
        """Postfix ``relayhost`` value for this sink: ``[127.0.0.1]:PORT``.

        For an IPv6 sink this is ``[ipv6:::1]:PORT``.
        """
        if ":" in self.host:
            return "[ipv6:%s]:%d" % (self.host, self.port)
        return "[%s]:%d" % (self.host, self.port)

    def start(self, timeout=10.0):
        """Start smtp-sink and wait (at most ``timeout`` s) until it listens.

        Returns self.  Raises :class:`PeerError` (with smtp-sink's log)
        if it exits or does not listen in time.
        """
        if self.proc is not None and self.proc.poll() is None:
            raise PeerError("SmtpSink already running (pid %d)" % self.proc.pid)
        os.makedirs(self.workdir, exist_ok=True)
        _make_traversable(self.workdir)
        if os.path.isdir(self.dump_dir) and not self._owns_dump_dir:
            raise PeerError("%s already exists: use a separate workdir for "
                            "each SmtpSink" % self.dump_dir)
        os.makedirs(self.dump_dir, exist_ok=True)
        self._owns_dump_dir = True
        pw = pwd.getpwnam(self.user)
        os.chown(self.dump_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dump_dir, 0o755)
        if self.port is None:
            self.port = free_port(self.host)
        argv = [SMTP_SINK, "-u", self.user,
                "-d", os.path.join(self.dump_dir, "%M.")]
        if self.verbose:
            argv.append("-v")
        argv += list(self.extra_args)
        argv += [format_hostport(self.host, self.port), str(self.backlog)]
        self.argv = argv
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(("# %s\n" % " ".join(argv)).encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log_file,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _running.add(self)
        try:
            wait_listening(self.host, self.port, timeout, proc=self.proc)
        except PeerError as e:
            self.stop()
            raise PeerError("smtp-sink did not start: %s\nargv: %s\nlog:\n%s"
                            % (e, " ".join(argv), self.log())) from None
        return self

    def stop(self, timeout=5.0):
        """Terminate smtp-sink and reap it (SIGTERM, then SIGKILL; bounded).

        Dump files that were still open (transactions in progress) are
        remembered as incomplete and never returned by :meth:`messages`.
        Safe to call repeatedly and on a sink that never started.
        """
        _running.discard(self)
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self._incomplete |= self._open_files()
            try:
                proc.terminate()
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
            except ProcessLookupError:
                pass
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def log(self):
        """smtp-sink's stdout/stderr so far (``str``)."""
        if self._log_file is not None:
            self._log_file.flush()
        return _tail(self.log_path, 1 << 20)

    # -- dumped messages ---------------------------------------------------

    def _open_files(self):
        """(dev, ino) of files the running smtp-sink holds open."""
        result = set()
        if self.proc is None or self.proc.poll() is not None:
            return result
        fd_dir = "/proc/%d/fd" % self.proc.pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return result
        for fd in fds:
            try:
                st = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            result.add((st.st_dev, st.st_ino))
        return result

    def message_paths(self):
        """Paths of the complete dump files, oldest first (mtime, then name).

        The mtime is when smtp-sink finished the file.  File timestamps
        have the kernel's clock-tick granularity (a few ms), and names are
        random, so the order of messages completed within the same tick is
        arbitrary: identify messages by content (Subject, Message-ID,
        recipients) rather than by position when that matters.
        """
        try:
            names = os.listdir(self.dump_dir)
        except FileNotFoundError:
            return []
        entries = []
        for name in names:
            path = os.path.join(self.dump_dir, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue          # RSET/disconnect unlinked it meanwhile
            if not os.path.isfile(path):
                continue
            entries.append((st.st_mtime_ns, name, path, (st.st_dev, st.st_ino)))
        # Read the open-file table *after* listing: a file that is listed
        # and not open now has been closed, i.e. completely written.
        open_now = self._open_files() | self._incomplete
        done = []
        for _mtime, name, path, key in entries:
            if key in open_now:
                continue
            try:
                st = os.stat(path)      # final mtime, now that it is closed
            except FileNotFoundError:
                continue
            done.append((st.st_mtime_ns, name, path))
        done.sort()
        return [e[2] for e in done]

    def messages(self):
        """Raw content (``bytes``) of every complete dump file, oldest first.

        Each item is the whole dump file including smtp-sink's ``X-``
        lines and ``Received:`` header; see :func:`parse_sink_dump`.
        """
        out = []
        for path in self.message_paths():
            try:
                with open(path, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                continue
        return out

    def parsed_messages(self):
        """:meth:`messages` parsed with :func:`parse_sink_dump` (list of dicts).

        Keys: ``meta`` (lower-cased smtp-sink ``X-`` lines, ``x-rcpt-args``
        always a list), ``data`` (message bytes, dot-unstuffed, LF line
        ends), ``data_crlf``, ``message`` (``email.message.Message``),
        ``sender``, ``recipients``, ``received``, ``prefix``, ``path``.
        """
        out = []
        for path in self.message_paths():
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                continue
            d = parse_sink_dump(raw)
            d["path"] = path
            out.append(d)
        return out

    def wait_messages(self, n, timeout=10.0):
        """Wait until at least ``n`` complete messages were dumped.

        Bounded poll (about every 50 ms, at most ``timeout`` seconds).
        Returns :meth:`parsed_messages` (may hold more than ``n``).
        Raises :class:`PeerError` with the count and smtp-sink's log on
        timeout, or if smtp-sink died.
        """
        deadline = time.monotonic() + timeout
        for _ in range(_iterations(timeout)):
            if len(self.message_paths()) >= n:
                return self.parsed_messages()
            if self.proc is None or self.proc.poll() is not None:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_INTERVAL)
        have = len(self.message_paths())
        if have >= n:
            return self.parsed_messages()
        raise PeerError("SmtpSink %s: %d message(s) after %.1fs, wanted %d%s\n"
                        "smtp-sink log:\n%s"
                        % (format_hostport(self.host, self.port or 0), have,
                           timeout, n,
                           "" if self.proc and self.proc.poll() is None
                           else " (smtp-sink is not running)",
                           _tail(self.log_path)))

    def clear(self):
        """Delete all complete dump files (e.g. between test phases)."""
        for path in self.message_paths():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

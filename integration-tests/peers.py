"""Test peers for the smtp-tls-proxy integration tests (stdlib only).

This module starts and stops the *other* parties of an integration test:

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
"""

import atexit
import email
import email.policy
import os
import pty
import pwd
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

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
]

SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"

_POLL_INTERVAL = 0.05


class PeerError(RuntimeError):
    """Raised when a test peer cannot be started/stopped or a wait times out.

    The message always says what was waited for and includes the relevant
    log output (smtp-sink stderr, Postfix maillog, postfix command output).
    """


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _strip_brackets(host):
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _iterations(timeout, interval=_POLL_INTERVAL):
    """Fixed number of poll iterations for ``timeout`` seconds."""
    return max(1, int(float(timeout) / interval) + 1)


_handed_out_ports = set()
_ports_lock = threading.Lock()


def free_port(host="127.0.0.1"):
    """Return a currently free TCP port number on ``host``.

    Binds a socket to ``(host, 0)``, reads the port the kernel chose and
    closes the socket.  Works for IPv4 (``"127.0.0.1"``) and IPv6
    (``"::1"``; brackets are accepted too).  Ports already returned by
    this function in this process are not handed out again, so two calls
    never collide with each other.  As with any "find a free port" scheme,
    another process may still grab the port before the caller binds it.
    """
    host = _strip_brackets(host)
    for _ in range(100):
        with socket.socket(_family(host), socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        with _ports_lock:
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port
    raise PeerError("free_port(%r): no unused port found in 100 tries" % host)


def format_hostport(host, port):
    """Return ``host:port`` with IPv6 hosts in brackets (``[::1]:2525``).

    This is the syntax smtp-sink, Postfix ``master.cf`` service names and
    most command-line tools (swaks ``--server``) accept.
    """
    host = _strip_brackets(host)
    if ":" in host:
        return "[%s]:%d" % (host, int(port))
    return "%s:%d" % (host, int(port))


def wait_port(host, port, timeout=10.0, proc=None):
    """Wait until a TCP connection to ``host:port`` succeeds.

    Polls with a fixed maximum number of attempts (about every 50 ms) and
    a wall-clock deadline of ``timeout`` seconds; the successful probe
    connection is closed immediately (the server sees a connect followed
    by a disconnect -- use :func:`wait_listening` to avoid that).  If
    ``proc`` (a ``subprocess.Popen``) is given and exits meanwhile, fails
    at once.  Raises :class:`PeerError` with the last connect error on
    timeout.
    """
    host = _strip_brackets(host)
    deadline = time.monotonic() + timeout
    last_err = None
    for _ in range(_iterations(timeout)):
        if proc is not None and proc.poll() is not None:
            raise PeerError("wait_port %s: process %d exited with status %s"
                            % (format_hostport(host, port), proc.pid,
                               proc.returncode))
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as e:
            last_err = e
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_INTERVAL)
    raise PeerError("wait_port: nothing accepted connections on %s within "
                    "%.1fs (last error: %s)"
                    % (format_hostport(host, port), timeout, last_err))


def _listening_inodes(host, port):
    """Socket inodes in LISTEN state on host:port, from /proc/net/tcp{,6}.

    Wildcard listeners (0.0.0.0, ::) count.  Returns None if /proc/net is
    not readable.
    """
    host = _strip_brackets(host)
    fam = _family(host)
    packed = socket.inet_pton(fam, host)
    if fam == socket.AF_INET:
        # An IPv6 wildcard socket (not V6ONLY) accepts IPv4 too.
        wanted = {"/proc/net/tcp": {packed[::-1].hex().upper(), "00000000"},
                  "/proc/net/tcp6": {"0" * 32}}
    else:
        # /proc/net/tcp6 prints the address as 4 host-order 32-bit words.
        words = [packed[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4)]
        wanted = {"/proc/net/tcp6": {"".join(words), "0" * 32}}
    inodes = set()
    for path, addrs in wanted.items():
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            return None
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":
                continue
            addr, _, p = parts[1].partition(":")
            if int(p, 16) == int(port) and addr in addrs:
                inodes.add(parts[9])
    return inodes


def _socket_inodes_of(pid):
    """Inodes of the sockets process ``pid`` has open (as strings)."""
    result = set()
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return result
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            result.add(target[8:-1])
    return result


def wait_listening(host, port, timeout=10.0, proc=None, pid=None):
    """Wait until a socket listens on ``host:port``, without connecting.

    Reads ``/proc/net/tcp`` / ``/proc/net/tcp6`` (a wildcard listener
    counts too), so the server's log is not polluted by a probe
    connection.  If ``pid`` (or ``proc``, a ``subprocess.Popen``) is
    given, the listening socket must belong to that process -- so a
    foreign listener on the same port is not mistaken for ours.  Falls
    back to :func:`wait_port` where ``/proc/net`` is unavailable.
    Bounded like :func:`wait_port`; raises :class:`PeerError` on timeout
    or if ``proc`` exits meanwhile.
    """
    if pid is None and proc is not None:
        pid = proc.pid
    if _listening_inodes(host, port) is None:
        return wait_port(host, port, timeout, proc)
    deadline = time.monotonic() + timeout
    for _ in range(_iterations(timeout)):
        inodes = _listening_inodes(host, port)
        if inodes and (pid is None or inodes & _socket_inodes_of(pid)):
            return
        if proc is not None and proc.poll() is not None:
            raise PeerError("wait_listening %s: process %d exited with status %s"
                            % (format_hostport(host, port), proc.pid,
                               proc.returncode))
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_INTERVAL)
    raise PeerError("wait_listening: %s listening on %s within %.1fs"
                    % ("nothing" if pid is None else "process %d not" % pid,
                       format_hostport(host, port), timeout))


def ipv6_loopback_available():
    """Return True if this machine can bind and connect over ``[::1]``.

    Checks ``socket.has_ipv6`` and then actually binds, listens and
    connects on ``::1``.  Tests that need IPv6 should *fail* (not skip)
    when this returns False.
    """
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as srv:
            srv.bind(("::1", 0))
            srv.listen(1)
            with socket.create_connection(("::1", srv.getsockname()[1]),
                                          timeout=2.0):
                pass
        return True
    except OSError:
        return False


def _make_traversable(path):
    """Make sure unprivileged daemons (nobody, postfix) can reach ``path``.

    smtp-sink writes its dumps as ``nobody`` and Postfix opens files in
    its data/queue directories as ``postfix``, so every directory from
    ``/`` down to ``path`` needs the search (x) bit for "others".  It is
    added to ``path`` itself and to directories below the system temp
    directory (e.g. a ``tempfile.mkdtemp()`` directory, which is 0700);
    any other blocking directory is reported instead of changed.
    """
    path = os.path.abspath(path)
    tmp_root = os.path.realpath(tempfile.gettempdir())
    d = path
    while True:
        st = os.stat(d)
        if not st.st_mode & 0o001:
            real = os.path.realpath(d)
            if d == path or real.startswith(tmp_root + os.sep):
                os.chmod(d, (st.st_mode & 0o7777) | 0o001)
            else:
                raise PeerError(
                    "%s is not searchable by other users (mode %o); "
                    "smtp-sink/Postfix daemons cannot reach %s -- use a "
                    "work directory below %s" % (d, st.st_mode & 0o7777,
                                                 path, tmp_root))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent


def _tail(path, max_chars=4000):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    text = data.decode("utf-8", "replace")
    if len(text) > max_chars:
        text = "...\n" + text[-max_chars:]
    return text


def _proc_state(pid):
    """Return the /proc state letter of pid, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) S ppid pgrp ..." -- comm may contain spaces/parens.
    return stat[stat.rindex(")") + 2:].split()[0]


def _pid_alive(pid):
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def _pids_in_pgrp(pgrp, include_zombies=False):
    """Pids whose process group is ``pgrp`` (zombies only if asked)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgrp and (
                include_zombies or fields[0] not in ("Z", "X")):
            pids.append(int(name))
    return pids


def _run_pty(argv, env=None, timeout=60.0):
    """Run argv with stdout/stderr on a pseudo-terminal; return (rc, output).

    Postfix commands only print their diagnostics to stderr when it is a
    terminal (otherwise they go to syslog only, and this machine has no
    syslog), hence the pty.  Daemons that inherit the pty are ignored:
    we stop reading as soon as the command itself has exited.
    """
    master_fd, slave_fd = pty.openpty()
    chunks = []
    try:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=slave_fd, stderr=slave_fd,
                                    env=env, close_fds=True)
        finally:
            os.close(slave_fd)
        deadline = time.monotonic() + timeout
        for _ in range(_iterations(timeout, 0.02)):
            r, _, _ = select.select([master_fd], [], [], 0.02)
            if r:
                try:
                    data = os.read(master_fd, 65536)
                except OSError:
                    data = b""
                if data:
                    chunks.append(data)
            if proc.poll() is not None or time.monotonic() >= deadline:
                break
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
            raise PeerError("%s: timed out after %.0fs; output:\n%s"
                            % (" ".join(argv), timeout,
                               b"".join(chunks).decode("utf-8", "replace")))
        # Drain what is left without blocking.
        for _ in range(100):
            r, _, _ = select.select([master_fd], [], [], 0)
            if not r:
                break
            try:
                data = os.read(master_fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        out = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
        return proc.returncode, out
    finally:
        os.close(master_fd)


_running = set()


@atexit.register
def _stop_leftovers():
    # Safety net: a test that forgot stop() must not leave daemons behind.
    for peer in list(_running):
        try:
            peer.stop()
        except Exception:
            pass


# --------------------------------------------------------------------------
# smtp-sink
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Private Postfix instance
# --------------------------------------------------------------------------

_MASTER_CF_SERVICES = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    """A private, throw-away real Postfix acting as the legacy backend MTA.

    ``PostfixInstance(workdir, smtpd_host="127.0.0.1", smtpd_port=None,
    relayhost=None, main_cf=None, master_smtpd_args=None)``

    Layout under ``workdir`` (created; made ``o+x`` so the ``postfix``
    user can reach it): ``etc/`` (``config_dir``: main.cf, master.cf),
    ``spool/`` (``queue_dir``, incl. ``pid/master.pid``), ``data/``
    (``data_dir``, incl. ``master.lock``) and ``maillog`` (``maillog_path``,
    Postfix's log, written by its ``postlogd``).  Nothing outside workdir
    is written; ``/etc/postfix`` is only read (``postfix-files``).
    Instances with different workdirs can run side by side (own ports,
    dirs, pid/lock files, ``syslog_name = postfix-<port>``).

    The generated ``main.cf`` (override or extend any of it with
    ``main_cf={name: value}``; a value of ``None`` drops the line so the
    Postfix default applies; list/tuple values are joined with ", ")::

        compatibility_level = 3.6
        queue_directory / data_directory   = inside workdir
        mail_owner = postfix, setgid_group = postdrop
        myhostname = backend.test          mydestination =  (no local mail)
        inet_interfaces = loopback-only    inet_protocols = all
        mynetworks = 127.0.0.0/8 [::1]/128
        smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
        relayhost = <relayhost>            (see below)
        smtp_dns_support_level = disabled, smtp_host_lookup = native,
        disable_dns_lookups = yes, smtpd_peername_lookup = no
            (no DNS at all; the client shows as "unknown[127.0.0.1]")
        alias_maps = , alias_database =
        smtp_tls_security_level = none, smtpd_tls_security_level = none
        queue_run_delay = 1s, minimal_backoff_time = 1s,
        maximal_backoff_time = 2s          (retries within seconds)
        maillog_file = <workdir>/maillog, maillog_file_prefixes = <workdir>
        syslog_name = postfix-<smtpd_port>
        biff = no, append_dot_mydomain = no
        default_transport = discard:...    (only when relayhost is None)

    ``relayhost``: an :class:`SmtpSink` (uses its ``relayhost`` property),
    a ``(host, port)`` tuple, or a literal Postfix value such as
    ``"[127.0.0.1]:2525"`` (keep the brackets: no MX lookup).  If None,
    mail that smtpd accepts is *discarded* (``default_transport =
    discard``) so it never sits in the queue.  Note: if the relayhost
    answers 5xx, Postfix creates a bounce, which it also sends to the
    relayhost (the sink then sees an extra message from ``<>``).

    ``master_smtpd_args``: extra arguments for the smtpd line in
    master.cf, either a list of words (``["-o", "smtpd_upstream_proxy_protocol=haproxy",
    "-v"]``) or a dict (``{"smtpd_upstream_proxy_protocol": "haproxy"}``
    becomes ``-o name=value``; values containing spaces use the
    ``-o { name = value }`` syntax).

    Typical ``main_cf`` for proxy tests: ``{"smtpd_authorized_xclient_hosts":
    "127.0.0.0/8"}``, ``{"smtpd_upstream_proxy_protocol": "haproxy"}``,
    ``{"smtpd_client_restrictions": "permit_mynetworks, reject"}``.
    ``smtpd_peername_lookup = no`` means ``reject_unknown_client_hostname``
    rejects everyone; override it if a test needs name lookups.

    Relaying and XCLIENT / PROXY protocol: after ``XCLIENT ADDR=...`` or a
    haproxy header, smtpd applies its restrictions to the *announced*
    client address.  A loopback address (what the proxy announces for a
    test client on 127.0.0.1/::1) is in ``mynetworks`` and may relay; any
    other address gets "554 5.7.1 Relay access denied" unless the test
    allows it, e.g. ``main_cf={"relay_domains": "example.net"}`` (relay
    to those recipient domains from anywhere) or ``{"mynetworks":
    "0.0.0.0/0 [::]/0"}``.  Postfix refuses ``smtpd_relay_restrictions =
    permit`` alone (smtpd dies with a fatal error, visible in maillog).

    ``myhostname`` (default ``backend.test``) appears in the banner, in
    the ``Received: ... by backend.test (Postfix) with ESMTP id QUEUEID``
    header Postfix adds, and as the EHLO name Postfix sends to the relayhost.

    ``start()`` creates the queue layout (``postfix -c etc start`` runs
    the integrity check that creates missing queue directories), starts
    the master and waits until smtpd listens (about 2-3 s); ``stop()``
    runs ``postfix -c etc stop`` and makes sure the master and all its
    processes are gone (SIGKILL fallback; about 1-2 s).  Use as a context
    manager; share one instance per TestCase class (``setUpClass``) when
    tests don't need different configurations.  The workdir must be
    reachable by the ``postfix`` user: put it below the temp directory
    (``tempfile.mkdtemp()`` dirs are fixed up automatically).

    Other members: ``address`` / ``smtpd_host`` / ``smtpd_port``,
    ``config_dir``, ``queue_dir``, ``data_dir``, ``maillog_path``,
    ``master_pid``, ``start_output`` (what ``postfix start`` printed),
    :meth:`maillog`, :meth:`wait_log` (wait for a log line),
    :meth:`queue_ids`, :meth:`wait_queue_empty`, :meth:`flush` (retry
    deferred mail now), :meth:`postconf` (effective parameter value),
    :meth:`postfix` (run any ``postfix -c`` subcommand), :meth:`is_running`,
    :meth:`main_cf_settings`, :meth:`master_cf_text`.
    """

    def __init__(self, workdir, smtpd_host="127.0.0.1", smtpd_port=None,
                 relayhost=None, main_cf=None, master_smtpd_args=None,
                 myhostname="backend.test"):
        self.workdir = os.path.abspath(workdir)
        self.smtpd_host = _strip_brackets(smtpd_host)
        self.smtpd_port = smtpd_port
        self.relayhost = relayhost
        self.main_cf_overrides = dict(main_cf or {})
        self.master_smtpd_args = master_smtpd_args
        self.myhostname = myhostname
        self.config_dir = os.path.join(self.workdir, "etc")
        self.queue_dir = os.path.join(self.workdir, "spool")
        self.data_dir = os.path.join(self.workdir, "data")
        self.maillog_path = os.path.join(self.workdir, "maillog")
        self.master_pid = None
        self._created = False

    # -- configuration -----------------------------------------------------

    @property
    def address(self):
        """``(host, port)`` of the smtpd listener, e.g. for smtplib."""
        return (self.smtpd_host, self.smtpd_port)

    def _relayhost_value(self):
        rh = self.relayhost
        if rh is None:
            return None
        if isinstance(rh, SmtpSink):
            if rh.port is None:
                raise PeerError("relayhost SmtpSink has no port yet: start "
                                "it first or create it with port=free_port()")
            return rh.relayhost
        if isinstance(rh, (tuple, list)):
            host, port = rh
            host = _strip_brackets(host)
            if ":" in host:
                return "[ipv6:%s]:%d" % (host, int(port))
            return "[%s]:%d" % (host, int(port))
        return str(rh)

    def main_cf_settings(self):
        """The ``main.cf`` settings (ordered dict) that ``start()`` writes."""
        s = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.myhostname,
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "all",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "relayhost": self._relayhost_value() or "",
            "smtp_dns_support_level": "disabled",
            "disable_dns_lookups": "yes",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "alias_maps": "",
            "alias_database": "",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "maillog_file": self.maillog_path,
            "maillog_file_prefixes": self.workdir,
            "syslog_name": "postfix-%s" % self.smtpd_port,
            "biff": "no",
            "append_dot_mydomain": "no",
        }
        if self.relayhost is None:
            s["default_transport"] = "discard:no relayhost configured"
        for k, v in self.main_cf_overrides.items():
            if v is None:
                s.pop(k, None)
            elif isinstance(v, (list, tuple)):
                s[k] = ", ".join(str(x) for x in v)
            else:
                s[k] = str(v)
        return s

    def _smtpd_args(self):
        a = self.master_smtpd_args
        if not a:
            return []
        if isinstance(a, dict):
            out = []
            for k, v in a.items():
                v = str(v)
                if re.search(r"\s", v) or v == "":
                    out += ["-o", "{ %s = %s }" % (k, v)]
                else:
                    out += ["-o", "%s=%s" % (k, v)]
            return out
        if isinstance(a, str):
            return [a]
        return [str(x) for x in a]

    def master_cf_text(self):
        """The ``master.cf`` text that ``start()`` writes."""
        smtpd = "%-20s inet  n       -       n       -       -       smtpd" % (
            format_hostport(self.smtpd_host, self.smtpd_port))
        args = self._smtpd_args()
        if args:
            smtpd += "\n  " + " ".join(args)
        return smtpd + "\n" + _MASTER_CF_SERVICES

    def _write_config(self):
        os.makedirs(self.config_dir, exist_ok=True)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write("# generated by peers.PostfixInstance\n")
            for k, v in self.main_cf_settings().items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write("# generated by peers.PostfixInstance\n")
            f.write(self.master_cf_text())

    def _env(self):
        env = dict(os.environ)
        env["MAIL_CONFIG"] = self.config_dir
        env.pop("MAIL_DEBUG", None)
        env.setdefault("LANG", "C")
        return env

    def postfix(self, *args, timeout=60.0):
        """Run ``postfix -c <config_dir> ARGS...``; return (rc, output).

        Output is what the command printed on its (pseudo-)terminal, i.e.
        its diagnostics, which Postfix would otherwise only send to syslog.
        """
        return _run_pty([POSTFIX, "-c", self.config_dir] + list(args),
                        env=self._env(), timeout=timeout)

    def postconf(self, name):
        """Value of main.cf parameter ``name`` for this instance (``postconf -h``)."""
        r = subprocess.run([POSTCONF, "-c", self.config_dir, "-h", name],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30, env=self._env())
        if r.returncode != 0:
            raise PeerError("postconf -h %s: %s" % (name, r.stderr.decode()))
        return r.stdout.decode().rstrip("\n")

    # -- lifecycle ---------------------------------------------------------

    def _read_master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self):
        """True if this instance's master process is alive."""
        pid = self.master_pid or self._read_master_pid()
        if pid is None or not _pid_alive(pid):
            return False
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            return True
        # Guard against a recycled pid: our master has MAIL_CONFIG=config_dir.
        return ("MAIL_CONFIG=" + self.config_dir).encode() in env or \
            not any(e.startswith(b"MAIL_CONFIG=") for e in env)

    def start(self, timeout=60.0):
        """Write the config, create the queue layout, start Postfix, wait.

        Waits (bounded by ``timeout``) until smtpd listens on
        ``smtpd_host:smtpd_port``.  Returns self.  On failure everything
        started is stopped again and :class:`PeerError` carries the
        postfix command output and the maillog.
        """
        if self.is_running():
            raise PeerError("Postfix instance in %s already running"
                            % self.workdir)
        if os.path.exists(os.path.join(self.config_dir, "main.cf")) \
                and not self._created:
            raise PeerError("%s already holds a Postfix configuration: use a "
                            "separate workdir for each PostfixInstance"
                            % self.config_dir)
        os.makedirs(self.workdir, exist_ok=True)
        _make_traversable(self.workdir)
        if self.smtpd_port is None:
            self.smtpd_port = free_port(self.smtpd_host)
        self._created = True
        self._write_config()
        # The postfix command chdir()s to the queue directory before it
        # runs the check that creates the rest of the layout.
        os.makedirs(self.queue_dir, exist_ok=True)
        os.chmod(self.queue_dir, 0o755)
        _running.add(self)
        rc, out = self.postfix("start", timeout=timeout)
        self.start_output = out
        if rc != 0:
            self.stop()
            raise PeerError("postfix -c %s start failed (exit %d):\n%s\n"
                            "maillog:\n%s" % (self.config_dir, rc, out,
                                              _tail(self.maillog_path)))
        self.master_pid = self._read_master_pid()
        try:
            wait_listening(self.smtpd_host, self.smtpd_port, timeout,
                           pid=self.master_pid)
        except PeerError as e:
            self.stop()
            raise PeerError("Postfix smtpd did not come up: %s\nmaillog:\n%s"
                            % (e, _tail(self.maillog_path))) from None
        return self

    def stop(self, timeout=20.0, reap_timeout=5.0):
        """Stop Postfix; guarantee that none of its processes is left.

        Runs ``postfix -c <config_dir> stop`` (which waits up to 5 s and
        then SIGKILLs the master's process group); then waits (bounded)
        for the master to be gone, and SIGKILLs any process still in the
        master's process group.  The master is a daemon (its parent is
        PID 1), so its dead processes stay zombies ("<defunct>" in
        ``pgrep -a master``) until PID 1 reaps them -- on this kind of
        machine that takes up to ~2 s; stop() waits up to
        ``reap_timeout`` seconds for that (0 = don't wait; zombies use no
        resources).  Safe to call repeatedly and on an instance that
        never started.  Raises :class:`PeerError` only if processes
        survive SIGKILL.
        """
        _running.discard(self)
        pid = self.master_pid
        if pid is None and self.is_running():
            pid = self._read_master_pid()
        if pid is not None and self.is_running():
            try:
                self.postfix("stop", timeout=timeout)
            except PeerError:
                pass
        if pid is not None:
            # "postfix stop" already waited and used SIGKILL as a last
            # resort; give stragglers a little time, then SIGKILL them.
            grace = time.monotonic() + min(5.0, timeout / 2)
            deadline = time.monotonic() + timeout
            for _ in range(_iterations(timeout)):
                alive = [p for p in [pid] + _pids_in_pgrp(pid)
                         if _pid_alive(p)]
                if not alive:
                    break
                if time.monotonic() >= grace:
                    for p in alive:
                        try:
                            os.kill(p, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                if time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_INTERVAL)
            left = [p for p in [pid] + _pids_in_pgrp(pid) if _pid_alive(p)]
            if left:
                raise PeerError("Postfix processes survived stop: %s" % left)
            # Wait for PID 1 to reap the zombies.
            deadline = time.monotonic() + reap_timeout
            for _ in range(_iterations(reap_timeout, 0.1)):
                if _proc_state(pid) is None and \
                        not _pids_in_pgrp(pid, include_zombies=True):
                    break
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
        self.master_pid = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- inspection ----------------------------------------------------------

    def maillog(self):
        """Everything Postfix logged so far (``str``; '' if nothing yet).

        Logging goes through the ``postlogd`` service and is asynchronous:
        use :meth:`wait_log` to wait for a particular line.
        """
        try:
            with open(self.maillog_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0):
        """Wait until regex ``pattern`` matches a line of :meth:`maillog`.

        Returns the ``re.Match``.  Bounded poll; raises :class:`PeerError`
        with the log tail on timeout.
        """
        rx = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        for _ in range(_iterations(timeout)):
            m = rx.search(self.maillog())
            if m:
                return m
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_INTERVAL)
        raise PeerError("pattern %r not in %s after %.1fs; tail:\n%s"
                        % (rx.pattern, self.maillog_path, timeout,
                           _tail(self.maillog_path)))

    def queue_ids(self):
        """Queue IDs of messages still in the queue (incoming, active,
        deferred, hold, maildrop)."""
        ids = []
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            top = os.path.join(self.queue_dir, sub)
            for dirpath, _dirs, files in os.walk(top):
                ids.extend(files)
        return sorted(set(ids))

    def wait_queue_empty(self, timeout=15.0):
        """Wait (bounded) until :meth:`queue_ids` is empty; PeerError otherwise."""
        deadline = time.monotonic() + timeout
        for _ in range(_iterations(timeout)):
            if not self.queue_ids():
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_INTERVAL)
        raise PeerError("Postfix queue in %s not empty after %.1fs: %s\n"
                        "maillog tail:\n%s" % (self.queue_dir, timeout,
                                               self.queue_ids(),
                                               _tail(self.maillog_path)))

    def flush(self):
        """Ask Postfix to retry deferred mail now (``postfix flush``)."""
        return self.postfix("flush")

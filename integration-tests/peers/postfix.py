"""A private, throw-away real Postfix as the legacy backend MTA."""

import os
import re
import signal
import subprocess
import time

from .process import (_POLL_INTERVAL, PeerError, _iterations, _make_traversable, _pid_alive,
                      _pids_in_pgrp, _proc_state, _run_pty, _running, _strip_brackets, _tail,
                      format_hostport, free_port, wait_listening)
from .sink import SmtpSink

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"


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

"""Real OpenSMTPD and Exim as test backends, next to peers.SmtpSink and
peers.PostfixInstance.

Their Debian packages conflict with postfix, which the other tests need,
so they are never installed: ``.ci/fetch-mta-debs`` downloads the .debs
(opensmtpd 6.8, exim4-daemon-heavy 4.96 and the libraries this machine
lacks) and unpacks them into ``MTA_DIR/root`` (default
``/var/tmp/smtp-tls-proxy-mta``). Each daemon runs in the foreground in a
private mount namespace (``unshare --mount --propagation private``) in
which:

* ``/usr`` is a read-only overlay of the cache's ``usr/`` over the real
  one, so the binaries, OpenSMTPD's helpers in ``/usr/libexec/opensmtpd``
  and the extracted libraries are at their compiled-in paths (Exim re-execs
  ``/usr/sbin/exim4`` for every delivery, OpenSMTPD runs its ``mail.*``
  helpers by absolute path);
* ``/etc`` is a read-only overlay whose upper layer holds a ``passwd`` and
  ``group`` with the compiled-in users (``opensmtpd``/``opensmtpq`` in
  Debian's build, ``Debian-exim``) and the delivery user ``stpmail``, an
  ``ld.so.cache`` built inside the namespace (so it lists the extracted
  libraries), ``/etc/mailname`` and Exim's ``trusted_configs``. An overlay,
  not bind mounts of single files: ``ldconfig`` or a package install on the
  host replaces those files by rename, which silently undoes a bind mount;
* ``/var`` is an overlay whose writable layer is a tmpfs (the spools
  ``/var/spool/smtpd``, ``/var/spool/exim4``, OpenSMTPD's chroot
  ``/var/lib/opensmtpd/empty``), and ``/run`` is a tmpfs (control socket,
  pid file).

Nothing is written outside the instance's work directory, which must not
lie below /var (an overlay's upper layer may not sit inside its lower
one): use ``tempfile.mkdtemp()``. Mail for the test domain from 127.0.0.1
is delivered into ``workdir/maildir`` (one file per delivered copy), which
:class:`Maildir` reads. ``stop()`` ends every process of the namespace
(SIGTERM, bounded wait, SIGKILL), found by its mount namespace, so no
privilege-separated child or delivery process outlives a test.

Must run as root (mounts, namespaces, daemons that change user).
"""
import email
import email.policy
import grp
import os
import pwd
import signal
import subprocess
import time

from peers import (PeerError, _listening_inodes, _make_traversable, _pid_alive,
                   _socket_inodes_of, _tail, format_hostport, free_port)

__all__ = ["MTA_DIR", "MTA_ROOT", "mta_missing", "Maildir", "OpenSmtpd", "Exim"]

MTA_DIR = os.environ.get("MTA_DIR", "/var/tmp/smtp-tls-proxy-mta")
MTA_ROOT = os.path.join(MTA_DIR, "root")
_POLL = 0.05


def mta_missing():
    """None when the unpacked OpenSMTPD and Exim are there, else what to run."""
    for rel in ("usr/sbin/smtpd", "usr/sbin/exim4", "usr/libexec/opensmtpd/mail.maildir"):
        if not os.access(os.path.join(MTA_ROOT, rel), os.X_OK):
            return "%s is missing: run sh .ci/fetch-mta-debs" % os.path.join(MTA_ROOT, rel)
    if not os.path.exists("/usr/bin/unshare"):
        return "unshare is missing: install util-linux"
    return None


def _free_ids(n, start=60900):
    """n numbers in use neither as a uid nor as a gid on this machine."""
    used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    out = []
    i = start
    while len(out) < n and i < 65000:
        if i not in used:
            out.append(i)
        i += 1
    if len(out) < n:
        raise PeerError("no %d free uids/gids from %d" % (n, start))
    return out


def _ns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/mnt" % pid)
    except OSError:
        return None


def _pids_in_ns(ns):
    """Live processes (not zombies) whose mount namespace is |ns|."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _ns_of(int(name)) == ns and _pid_alive(int(name)):
            out.append(int(name))
    return out


class Maildir:
    """The messages an MTA delivered into a maildir (``new/`` and ``cur/``;
    ``tmp/`` holds deliveries in progress and is never read)."""

    def __init__(self, path):
        self.path = path

    def message_paths(self):
        entries = []
        for sub in ("new", "cur"):
            d = os.path.join(self.path, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for n in names:
                p = os.path.join(d, n)
                try:
                    entries.append((os.stat(p).st_mtime_ns, n, p))
                except FileNotFoundError:
                    continue
        entries.sort()
        return [e[2] for e in entries]

    def messages(self):
        out = []
        for p in self.message_paths():
            try:
                with open(p, "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                continue
        return out

    def parsed_messages(self):
        """Dicts with ``data`` (the file: the message with LF line ends, as
        both MTAs store it), ``data_crlf``, ``message`` (email.message,
        compat32) and ``path``."""
        out = []
        for p in self.message_paths():
            try:
                with open(p, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                continue
            crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            out.append({"data": raw, "data_crlf": crlf, "path": p,
                        "message": email.message_from_bytes(raw, policy=email.policy.compat32)})
        return out

    def wait_messages(self, n, timeout=10.0, alive=None):
        """Bounded wait for at least n messages; PeerError on timeout or when
        alive() turns false."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / _POLL) + 1):
            if len(self.message_paths()) >= n:
                return self.parsed_messages()
            if alive is not None and not alive():
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL)
        if len(self.message_paths()) >= n:
            return self.parsed_messages()
        raise PeerError("maildir %s: %d message(s) after %.1fs, wanted %d"
                        % (self.path, len(self.message_paths()), timeout, n))


class _NamespacedMta:
    """One MTA daemon from the cache in its own mount namespace (see the
    module docstring). Subclasses give the accounts, the configuration, the
    set-up commands run inside the namespace and the daemon's argv."""

    label = "mta"
    accounts = ()        # compiled-in users; "stpmail" (delivery) is added

    def __init__(self, workdir, host="127.0.0.1", port=None, domain="dst.test",
                 hostname=None, relay_from="127.0.0.1"):
        self.workdir = os.path.abspath(workdir)
        self.host = host
        self.port = port
        self.domain = domain
        self.hostname = hostname or "backend-%s.test" % self.label
        self.relay_from = relay_from
        self.maildir_path = os.path.join(self.workdir, "maildir")
        self.maildir = Maildir(self.maildir_path)
        self.log_path = os.path.join(self.workdir, "daemon.log")
        self.conf_path = os.path.join(self.workdir, self.label + ".conf")
        self.etc_layer = os.path.join(self.workdir, "etc-layer")
        self.ns_dir = os.path.join(self.workdir, "ns")
        self.script_path = os.path.join(self.workdir, "namespace.sh")
        self.proc = None
        self.ns = None
        self._log_file = None
        self.ids = {}

    # -- to be provided by subclasses --------------------------------------

    def config_text(self):
        raise NotImplementedError

    def setup_commands(self):
        """Shell lines run inside the namespace after the mounts."""
        return []

    def argv(self):
        raise NotImplementedError

    def extra_etc(self):
        """{relative path: text} for the /etc layer."""
        return {}

    def prepare_workdir(self):
        """Called once the accounts' numbers (self.ids) are chosen."""

    # -- lifecycle -----------------------------------------------------------

    @property
    def address(self):
        return (self.host, self.port)

    def _write_etc_layer(self):
        names = list(self.accounts) + ["stpmail"]
        ids = _free_ids(len(names))
        self.ids = dict(zip(names, ids))
        with open("/etc/passwd") as f:
            passwd = f.read()
        with open("/etc/group") as f:
            group = f.read()
        if not passwd.endswith("\n"):
            passwd += "\n"
        if not group.endswith("\n"):
            group += "\n"
        for name, i in self.ids.items():
            home = self.maildir_path if name == "stpmail" else "/var/empty"
            passwd += "%s:x:%d:%d:smtp-tls-proxy test:%s:/usr/sbin/nologin\n" % (name, i, i, home)
            group += "%s:x:%d:\n" % (name, i)
        files = {"passwd": passwd, "group": group, "mailname": self.hostname + "\n"}
        files.update(self.extra_etc())
        for rel, text in files.items():
            p = os.path.join(self.etc_layer, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, 0o644)

    def _script(self):
        q = lambda s: "'" + s.replace("'", "'\\''") + "'"
        lines = [
            "set -eu",
            "S=%s" % q(self.ns_dir),
            # Everything the namespace writes outside the work directory
            # lands in this tmpfs, which vanishes with the namespace.
            "mount -t tmpfs -o mode=0755 stp-mta-scratch \"$S\"",
            "mkdir -p \"$S/etc\" \"$S/var-up\" \"$S/var-work\"",
            "cp -a %s/. \"$S/etc/\"" % q(self.etc_layer),
            "mount -t overlay stp-mta-usr -o lowerdir=%s:/usr /usr" % q(os.path.join(MTA_ROOT, "usr")),
            # The cache as the daemons see it: the extracted libraries now
            # sit in /usr/lib; ldconfig -X writes the cache only.
            "ldconfig -X -C \"$S/etc/ld.so.cache\"",
            "mount -t overlay stp-mta-etc -o lowerdir=\"$S/etc\":/etc /etc",
            "mount -t overlay stp-mta-var -o lowerdir=/var,upperdir=\"$S/var-up\","
            "workdir=\"$S/var-work\" /var",
            "mount -t tmpfs -o mode=0755 stp-mta-run /run",
        ]
        lines += self.setup_commands()
        lines.append("exec " + " ".join(q(a) for a in self.argv()))
        return "\n".join(lines) + "\n"

    def start(self, timeout=15.0):
        missing = mta_missing()
        if missing:
            raise PeerError(missing)
        if self.proc is not None and self.proc.poll() is None:
            raise PeerError("%s already running" % self.label)
        if self.workdir == "/var" or self.workdir.startswith("/var/"):
            raise PeerError("%s: the work directory may not lie below /var" % self.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        _make_traversable(self.workdir)
        os.makedirs(self.ns_dir, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        self._write_etc_layer()
        os.makedirs(self.maildir_path, exist_ok=True)
        os.chown(self.maildir_path, self.ids["stpmail"], self.ids["stpmail"])
        os.chmod(self.maildir_path, 0o755)
        self.prepare_workdir()
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        os.chmod(self.conf_path, 0o644)
        with open(self.script_path, "w") as f:
            f.write(self._script())
        self._log_file = open(self.log_path, "ab")
        own_ns = _ns_of(os.getpid())
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", self.script_path],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        try:
            for _ in range(int(timeout / _POLL) + 1):
                if self.ns is None:
                    ns = _ns_of(self.proc.pid)
                    if ns is not None and ns != own_ns:
                        self.ns = ns
                if self.proc.poll() is not None:
                    raise PeerError("exited with status %s" % self.proc.returncode)
                if self.ns is not None and self._listening():
                    return self
                if time.monotonic() >= deadline:
                    raise PeerError("not listening on %s within %.0fs"
                                    % (format_hostport(self.host, self.port), timeout))
                time.sleep(_POLL)
            raise PeerError("not listening in time")
        except PeerError as e:
            self.stop()
            raise PeerError("%s did not start: %s\nlog:\n%s" % (self.label, e, self.log())) from None

    def _listening(self):
        want = _listening_inodes(self.host, self.port) or set()
        if not want:
            return False
        have = set()
        for pid in _pids_in_ns(self.ns):
            have |= _socket_inodes_of(pid)
        return bool(want & have)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM the daemon, then SIGKILL whatever of its namespace is
        left; bounded. Safe to call twice or on an instance never started."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                pass
        if self.ns is not None:
            deadline = time.monotonic() + timeout / 2
            for _ in range(int(timeout / 2 / _POLL) + 1):
                left = _pids_in_ns(self.ns)
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if time.monotonic() >= deadline:
                    raise PeerError("%s: processes survived SIGKILL: %s" % (self.label, left))
                time.sleep(_POLL)
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- inspection ------------------------------------------------------------

    def log(self):
        if self._log_file is not None:
            self._log_file.flush()
        return _tail(self.log_path, 1 << 20)

    def messages(self):
        return self.maildir.messages()

    def parsed_messages(self):
        return self.maildir.parsed_messages()

    def wait_messages(self, n, timeout=10.0):
        try:
            return self.maildir.wait_messages(n, timeout, alive=self.alive)
        except PeerError as e:
            raise PeerError("%s: %s%s\nlog:\n%s" % (
                self.label, e, "" if self.alive() else " (daemon not running)",
                self.log()[-4000:])) from None


class OpenSmtpd(_NamespacedMta):
    """OpenSMTPD 6.8 (``smtpd -d -f CONF``): accepts mail for ``domain``
    from ``relay_from`` and delivers it into the maildir (every recipient
    of the domain maps to the delivery user through a virtual table).
    Its log (``-d``: to stderr) is :meth:`log`."""

    label = "opensmtpd"
    # Debian builds OpenSMTPD with these two users (not _smtpd/_smtpq).
    accounts = ("opensmtpd", "opensmtpq")

    def config_text(self):
        return (
            'table vusers { "@%(domain)s" = "stpmail" }\n'
            "listen on %(host)s port %(port)d hostname %(hostname)s\n"
            'action "local" maildir "%(maildir)s" virtual <vusers>\n'
            'match from src %(relay_from)s for domain "%(domain)s" action "local"\n'
            % {"domain": self.domain, "host": self.host, "port": self.port,
               "hostname": self.hostname, "maildir": self.maildir_path,
               "relay_from": self.relay_from})

    def setup_commands(self):
        return ["mkdir -p /var/spool/smtpd /var/lib/opensmtpd/empty /var/empty",
                "chmod 711 /var/spool/smtpd"]

    def argv(self):
        return ["/usr/sbin/smtpd", "-d", "-f", self.conf_path]


class Exim(_NamespacedMta):
    """Exim 4.96 from exim4-daemon-heavy (``exim4 -bdf -C CONF``: a
    foreground daemon, no queue runner): accepts mail for ``domain`` from
    ``relay_from`` and delivers it with an appendfile transport into the
    maildir. With ``auth=True`` it offers AUTH PLAIN and LOGIN (also
    without TLS: the proxy is the TLS end) for ``auth_user`` /
    ``auth_password``. Its main and panic logs are in ``workdir/log``
    (:meth:`log` returns both). The configuration is listed in the
    namespace's ``/etc/exim4/trusted_configs``, so Exim keeps root for the
    deliveries it re-execs."""

    label = "exim"
    accounts = ("Debian-exim",)
    auth_user = "matrix"
    auth_password = "matrix-secret"

    def __init__(self, workdir, auth=False, **kw):
        super().__init__(workdir, **kw)
        self.auth = auth
        self.logdir = os.path.join(self.workdir, "log")

    def extra_etc(self):
        return {"exim4/trusted_configs": self.conf_path + "\n"}

    def config_text(self):
        text = """\
primary_hostname = %(hostname)s
daemon_smtp_ports = %(port)d
local_interfaces = <; %(host)s
pid_file_path = /run/exim.pid
log_file_path = %(logdir)s/%%slog
spool_directory = /var/spool/exim4
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
keep_environment =
domainlist local_domains = %(domain)s
hostlist relay_from_hosts = <; %(relay_from)s
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept hosts = +relay_from_hosts
         domains = +local_domains
  deny   message = relay not permitted

begin routers

local_all:
  driver = accept
  domains = +local_domains
  transport = maildir_t

begin transports

maildir_t:
  driver = appendfile
  directory = %(maildir)s
  maildir_format
  create_directory
  user = stpmail
  group = stpmail
  mode = 0644

begin retry

*   *   F,1m,10s

begin authenticators
""" % {"hostname": self.hostname, "port": self.port, "host": self.host,
       "logdir": self.logdir, "domain": self.domain, "relay_from": self.relay_from,
       "maildir": self.maildir_path}
        if self.auth:
            text += """
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{%(u)s}}{eq{$auth3}{%(p)s}}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username: | Password:
  server_condition = ${if and {{eq{$auth1}{%(u)s}}{eq{$auth2}{%(p)s}}}}
  server_set_id = $auth1
""" % {"u": self.auth_user, "p": self.auth_password}
        return text

    def setup_commands(self):
        return ["mkdir -p /var/spool/exim4",
                "chown Debian-exim:Debian-exim /var/spool/exim4",
                "chmod 750 /var/spool/exim4"]

    def argv(self):
        return ["/usr/sbin/exim4", "-bdf", "-C", self.conf_path]

    def prepare_workdir(self):
        # Exim creates its logs as Debian-exim.
        os.makedirs(self.logdir, exist_ok=True)
        os.chown(self.logdir, self.ids["Debian-exim"], self.ids["Debian-exim"])

    def log(self):
        parts = [super().log()]
        for name in ("mainlog", "paniclog", "rejectlog"):
            p = os.path.join(self.logdir, name)
            if os.path.exists(p):
                parts.append("== %s ==\n%s" % (name, _tail(p, 1 << 20)))
        return "\n".join(parts)

"""Process, port and file helpers shared by the test peers: free ports,
bounded waits for a listener, /proc lookups of processes and process
groups, commands on a pseudo-terminal, and the safety net that stops
peers a test forgot.
"""

import atexit
import os
import pty
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time

_POLL_INTERVAL = 0.05


class PeerError(RuntimeError):
    """Raised when a test peer cannot be started/stopped or a wait times out.

    The message always says what was waited for and includes the relevant
    log output (smtp-sink stderr, Postfix maillog, postfix command output).
    """


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


def stop_popen(proc, timeout=10.0):
    """SIGTERM |proc| (a subprocess.Popen), wait at most |timeout|, then
    SIGKILL: the one bounded stop of the peers run in the foreground."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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

#!/usr/bin/env python3
"""tools/bench/bench.py - `make bench`: one interleaved benchmark run of
smtp-tls-proxy against a direct connection to the sink, nginx's mail proxy
and hitch, all driven by the same load generator (build/tools/smtp-load)
into the same sink (smtp-load --sink).

Every path under test is its own process, started once per run on free
ports (picked by binding port 0) and stopped at the end whatever happens.
Each workload runs every path that applies, interleaved within each
repetition (rep 1: direct, proxy, nginx, hitch; rep 2: ...), so drift hits
all alike; a short warm-up precedes every measured run and two paths never
run at the same time. The harness prints one table of medians, the ratios
against their targets and the crypto ceiling; it asserts nothing, but it
exits non-zero with a clear message when a peer cannot start, dies, or a
run has errors. tools/bench/README.md says what each figure means.
Python 3 standard library only.
"""

import argparse
import json
import math
import os
import platform
import queue
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# SMTP_LOAD names another build of the load generator.
LOAD = Path(os.environ.get("SMTP_LOAD", ROOT / "build/tools/smtp-load"))
PROXY = ROOT / "proxy/smtp-tls-proxy"
CERT = ROOT / "certs/test/mx-ecdsa-chain.crt"
KEY = ROOT / "certs/test/mx-ecdsa.key"
MAIL_MODULE = Path("/usr/lib/nginx/modules/ngx_mail_module.so")
INSTALL_HINT = "apt-get install nginx-light libnginx-mod-mail hitch"
SNI = "mx.example.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CAP_SYS_RESOURCE = 24

# Display names of the paths, in the order every repetition runs them.
PATH_ORDER = ["direct", "proxy", "nginx", "hitch"]
LABEL = {"direct": "direct", "proxy": "smtp-tls-proxy", "nginx": "nginx mail", "hitch": "hitch"}


class BenchError(Exception):
    """A failure that ends the run: a peer that cannot start or died, a
    load generator that crashed or hung, a message that did not arrive."""


def log(msg):
    """Progress goes to stderr, so stdout carries only the report."""
    print(f"[{time.monotonic() - START:7.1f}s] {msg}", file=sys.stderr, flush=True)


START = time.monotonic()


def raise_nofile():
    """preexec_fn of every child: the soft descriptor limit up to the hard
    one (the idle workload needs about 20000 in the proxy)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- processes

def proc_stat(pid):
    """(pgrp, utime+stime ticks) of one process from /proc/PID/stat, or
    None when it is gone. The command name may hold spaces and parentheses:
    the fields start after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); pgrp is field 5, utime 14, stime 15.
    return int(rest[2]), int(rest[11]) + int(rest[12])


def group_pids(pgid):
    """Every live process of a process group: nginx's master and workers,
    hitch's processes, the proxy (one process, all threads)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[0] == pgid:
                pids.append(int(name))
    return pids


def vm_rss_kib(pid):
    """VmRSS of one process in KiB (0 when it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Child:
    """One process the harness started, in its own session and process
    group so that stop() reaches every process it forks (nginx and hitch
    workers) and nothing else."""

    def __init__(self, name, argv, logdir, capture=False):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(logdir) / f"{name}.log"
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else logf, stderr=logf,
                start_new_session=True, preexec_fn=raise_nofile)
        self.pid = self.proc.pid
        CHILDREN.append(self)

    def alive(self):
        """True while the group leader runs."""
        return self.proc.poll() is None

    def cpu_ticks(self):
        """utime+stime, in clock ticks, of all the group's processes."""
        return sum((proc_stat(p) or (0, 0))[1] for p in group_pids(self.pid))

    def rss_kib(self):
        """Sum of VmRSS over all the group's processes."""
        return sum(vm_rss_kib(p) for p in group_pids(self.pid))

    def signal_group(self, sig):
        """Send sig to the group; a group already gone is not an error."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace=5.0):
        """SIGTERM to the group, then SIGKILL after grace seconds; reaps the
        leader. Safe to call twice."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Workers may outlive their master for a moment: the whole group.
        self.signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        if self in CHILDREN:
            CHILDREN.remove(self)

    def log_tail(self, lines=15):
        """The last lines of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])


CHILDREN = []


def stop_all():
    """Stops everything still running, newest first (the load generator
    before the peers, the peers before the sink)."""
    for child in list(reversed(CHILDREN)):
        child.stop()


def free_ports(count):
    """count distinct free loopback ports: all bound to port 0 at once,
    then released, so they differ from each other."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_listening(child, ports, timeout=15.0):
    """Waits until every port accepts a connection; fails loudly when the
    child exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if not child.alive():
                raise BenchError(f"{child.name} exited at start (status "
                                 f"{child.proc.returncode}):\n{child.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"{child.name} does not listen on 127.0.0.1:{port} after "
                                     f"{timeout:.0f}s:\n{child.log_tail()}")
                time.sleep(0.05)


def fill_template(name, values, out):
    """Writes tools/bench/NAME with every @KEY@ replaced from values; a
    placeholder left over is a harness bug."""
    text = (HERE / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise BenchError(f"{name}: no value for {', '.join(sorted(set(left)))}")
    Path(out).write_text(text)


# ---------------------------------------------------------------- the peers

class Peer:
    """One path under test: its listening ports by listener kind (smtp,
    submission, submissions) and the process whose CPU and memory count
    (None for direct, whose only process is the sink)."""

    def __init__(self, key, ports, child, tmp=None, wait_ports=()):
        self.key = key
        self.label = LABEL[key]
        self.ports = ports
        self.child = child
        self.tmp = tmp
        self.wait_ports = sorted(set(ports.values()) | set(wait_ports))

    def restart(self):
        """A fresh process with the same command line and ports: memory an
        earlier workload's sessions freed stays in the allocator and would
        be reused without showing as growth (the idle workload)."""
        argv = self.child.argv
        self.child.stop()
        deadline = time.monotonic() + 15
        while True:
            self.child = Child(self.child.name, argv, self.tmp)
            try:
                wait_listening(self.child, self.wait_ports)
                return
            except BenchError:
                # The old process's sockets may take a moment to go.
                self.child.stop()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def start_sink(tmp, port, threads):
    """smtp-load --sink on a fixed port (the peers' configurations name
    it). The port was free a moment ago; a few tries ride out a slow
    release."""
    port_file = Path(tmp) / "sink.port"
    for attempt in range(10):
        port_file.unlink(missing_ok=True)
        child = Child("sink", [LOAD, "--sink", "--listen", f"127.0.0.1:{port}",
                               "--port-file", port_file, "-t", threads, "--json"],
                      tmp, capture=True)
        deadline = time.monotonic() + 10
        while child.alive() and time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                got = int(port_file.read_text().strip())
                if got != port:
                    raise BenchError(f"sink listens on {got}, asked for {port}")
                return child
            time.sleep(0.05)
        if child.alive():
            child.stop()
            raise BenchError("the sink wrote no port file in 10s")
        child.stop()
        log(f"sink could not start on {port} (try {attempt + 1}), retrying")
        time.sleep(0.5)
    raise BenchError(f"the sink (smtp-load --sink) cannot listen on 127.0.0.1:{port}:\n"
                     f"{child.log_tail()}")


def start_proxy(tmp, sink_port):
    """The plain build of smtp-tls-proxy with tools/bench/proxy.conf.in."""
    smtp, sub, subs = free_ports(3)
    conf = Path(tmp) / "proxy.conf"
    fill_template("proxy.conf.in", {
        "SINKPORT": sink_port, "PORT_SMTP": smtp, "PORT_SUBMISSION": sub,
        "PORT_SUBMISSIONS": subs, "CERT": CERT, "KEY": KEY,
        "ALLOW_ROOT": "allow_root = yes" if os.geteuid() == 0 else ""}, conf)
    child = Child("proxy", [PROXY, "-c", conf], tmp)
    wait_listening(child, [smtp, sub, subs])
    return Peer("proxy", {"smtp": smtp, "submission": sub, "submissions": subs}, child, tmp)


def start_nginx(tmp, sink_port):
    """nginx's mail proxy with tools/bench/nginx.conf.in, in the
    foreground, everything it writes under its own directory."""
    smtp, sub, subs, auth = free_ports(4)
    ndir = Path(tmp) / "nginx"
    ndir.mkdir()
    fill_template("nginx.conf.in", {
        "MAIL_MODULE": MAIL_MODULE, "TMPDIR": ndir, "AUTHPORT": auth, "SINKPORT": sink_port,
        "PORT_SMTP": smtp, "PORT_SUBMISSION": sub, "PORT_SUBMISSIONS": subs,
        "CERT": CERT, "KEY": KEY,
        # As root, the workers run as nobody (nginx's default user, but
        # Debian has no group "nobody").
        "USER_LINE": "user nobody nogroup;" if os.geteuid() == 0 else ""}, ndir / "nginx.conf")
    child = Child("nginx", ["nginx", "-p", ndir, "-c", ndir / "nginx.conf",
                            "-g", "daemon off;"], tmp)
    wait_listening(child, [smtp, sub, subs, auth])
    return Peer("nginx", {"smtp": smtp, "submission": sub, "submissions": subs}, child, tmp,
                [auth])


def start_hitch(tmp, sink_port):
    """hitch with tools/bench/hitch.conf.in: implicit TLS only."""
    (port,) = free_ports(1)
    hdir = Path(tmp) / "hitch"
    (hdir / "ocsp").mkdir(parents=True)
    pem = hdir / "mx-ecdsa.pem"
    pem.write_text(CERT.read_text() + KEY.read_text())
    os.chmod(pem, 0o600)
    fill_template("hitch.conf.in", {
        "PORT": port, "SINKPORT": sink_port, "PEM": pem, "TMPDIR": hdir,
        # Started as root, hitch insists on a user to switch to.
        "USER_LINE": 'user = "nobody"' if os.geteuid() == 0 else ""}, hdir / "hitch.conf")
    child = Child("hitch", ["hitch", f"--config={hdir / 'hitch.conf'}"], tmp)
    wait_listening(child, [port])
    return Peer("hitch", {"submissions": port}, child, tmp)


class VerifySink:
    """A small SMTP server of the harness's own, on the sink's port before
    the real sink starts: one message through each path must arrive here,
    whole, before anything is measured. It records every message and, after
    QUIT, waits for the client to close first, so the TIME_WAIT stays on the
    other side and the real sink can bind the port."""

    def __init__(self, port):
        self.messages = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        """Accept loop; each connection gets its own thread."""
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        """One SMTP session: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT;
        pipelined commands are answered in order."""
        conn.settimeout(20)
        f = conn.makefile("rwb")
        try:
            f.write(b"220 verify-sink ESMTP\r\n")
            f.flush()
            while True:
                line = f.readline(4096)
                if not line:
                    break
                verb = line[:4].upper()
                if verb == b"EHLO":
                    f.write(b"250-verify-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                            b"250 SIZE 52428800\r\n")
                elif verb == b"DATA":
                    f.write(b"354 go on\r\n")
                    f.flush()
                    body = []
                    while True:
                        data = f.readline(1 << 20)
                        if not data or data == b".\r\n":
                            break
                        body.append(data)
                    with self.lock:
                        self.messages.append(b"".join(body))
                    f.write(b"250 2.0.0 taken\r\n")
                elif verb == b"QUIT":
                    f.write(b"221 2.0.0 bye\r\n")
                    f.flush()
                    conn.settimeout(5)
                    while conn.recv(4096):
                        pass
                    break
                else:
                    f.write(b"250 2.0.0 ok\r\n")
                f.flush()
        except OSError:
            pass
        finally:
            f.close()
            conn.close()

    def count(self):
        """Messages received so far."""
        with self.lock:
            return len(self.messages)

    def close(self):
        """Stops accepting and releases the port."""
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


# ---------------------------------------------------------------- workloads

class Workload:
    """One workload: the smtp-load options, the listener kind it uses on
    each peer, the paths it runs and how its count is chosen (a target
    duration on the calibration path, or a fixed count)."""

    def __init__(self, name, mode, listener, paths, m=1, size="2K", c=20, target_s=8,
                 calibrate_on=None, fixed_n=None, quick_n=None, resume=False, idle=False):
        self.name, self.mode, self.listener, self.paths = name, mode, listener, paths
        self.m, self.size, self.c, self.target_s = m, size, c, target_s
        self.calibrate_on = calibrate_on or paths[0]
        self.fixed_n, self.quick_n = fixed_n, quick_n
        self.resume, self.idle = resume, idle
        self.n = None  # chosen by Bench.calibrate, then fixed

    def base_args(self, path, threads, source_range):
        """The smtp-load options of this workload for one path (direct has
        no TLS: a STARTTLS workload runs plain against the sink)."""
        mode = "plain" if path == "direct" else self.mode
        args = ["--mode", mode]
        if mode != "plain":
            args += ["--tls-version", "1.3", "--sni", SNI]
        if self.resume:
            args.append("--resume")
        args += ["-c", self.c, "-t", threads, "--source-range", source_range]
        if not self.idle:
            args += ["-m", self.m]
            if self.m:
                args += ["-s", self.size]
        return [str(a) for a in args]


WORKLOADS = [
    Workload("25-plain", "plain", "smtp", ["direct", "proxy", "nginx"], m=10, size="10K",
             target_s=10, calibrate_on="direct"),
    Workload("587-starttls", "starttls", "submission", ["direct", "proxy", "nginx"],
             target_s=8, calibrate_on="proxy"),
    Workload("465-new", "tls", "submissions", ["proxy", "nginx", "hitch"], target_s=8),
    Workload("465-resumed", "tls", "submissions", ["proxy", "nginx", "hitch"], target_s=8,
             resume=True),
    Workload("465-handshake", "tls", "submissions", ["proxy", "nginx", "hitch"], m=0,
             target_s=8),
    Workload("465-10MiB", "tls", "submissions", ["proxy", "nginx", "hitch"], size="10M", c=4,
             fixed_n=20, quick_n=3),
    Workload("idle", "tls", "submissions", ["proxy", "nginx", "hitch"], c=200, idle=True),
]


def machine_busy_ticks():
    """Busy clock ticks of the whole machine (all CPUs) from /proc/stat:
    what other people's processes use shows as busy time that is not
    ours."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: all but idle, iowait.
    return sum(fields[:8]) - fields[3] - fields[4]


def count_time_wait():
    """TCP sockets in TIME_WAIT (state 06) on this machine, the sign of
    loopback ephemeral ports running out."""
    total = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                total += sum(1 for line in f if line.split()[3] == "06")
        except (OSError, StopIteration, IndexError):
            pass
    return total


def parse_json_line(text):
    """The last line of text that parses as a JSON object, or None."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def run_load(name, args, port, tmp, timeout):
    """Runs one smtp-load client to the end; returns (result, argv, rc).
    Exit 0 means no errors and 1 errors; anything else, no JSON, or no end
    within timeout seconds fails the run."""
    argv = [str(LOAD)] + args + ["--json", f"127.0.0.1:{port}"]
    child = Child(name, argv, tmp, capture=True)
    try:
        out, _ = child.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.stop()
        raise BenchError(f"{name}: smtp-load did not finish in {timeout:.0f}s: {' '.join(argv)}")
    child.stop()
    rc = child.proc.returncode
    result = parse_json_line(out.decode(errors="replace"))
    if rc not in (0, 1) or result is None:
        raise BenchError(f"{name}: smtp-load exited {rc} without a result: {' '.join(argv)}\n"
                         f"{child.log_tail()}")
    return result, argv, rc


def error_total(result):
    """Sum of the error counts of one smtp-load result."""
    return sum((result.get("errors") or {}).values())


class Bench:
    """One run: the peers, the sink, the records of every client run, and
    what goes wrong along the way (errors end the run with status 1)."""

    def __init__(self, opts, tmp):
        self.opts, self.tmp = opts, tmp
        self.peers = {}
        self.sink = None
        self.runs = []
        self.problems = []
        self.notes = []
        self.commands = {}
        self.client_messages = 0
        self.sink_counts = {}
        self.seq = 0

    # ---- start and check

    def start(self, workloads):
        """Starts the paths the chosen workloads need, checks one message
        through each with the verification sink, then starts the real one."""
        needed = {p for w in workloads for p in w.paths}
        (self.sink_port,) = free_ports(1)
        self.peers["direct"] = Peer("direct", {k: self.sink_port for k in
                                               ("smtp", "submission", "submissions")}, None)
        starters = {"proxy": start_proxy, "nginx": start_nginx, "hitch": start_hitch}
        for key in PATH_ORDER[1:]:
            if key in needed:
                log(f"starting {LABEL[key]}")
                self.peers[key] = starters[key](self.tmp, self.sink_port)
        self.verify(workloads)
        log(f"starting the sink on 127.0.0.1:{self.sink_port}")
        self.sink = start_sink(self.tmp, self.sink_port, self.opts.sink_threads)

    def verify(self, workloads):
        """Two messages on one connection through every (path, listener,
        mode) the workloads use must reach the verification sink: nginx
        reads the first MAIL itself and is transparent after its handoff,
        the second message shows that. Through the proxy the copy must
        carry its status header, with TLS where the client used it."""
        vsink = VerifySink(self.sink_port)
        try:
            done = set()
            for w in workloads:
                for key in w.paths:
                    peer = self.peers[key]
                    mode = "plain" if key == "direct" else w.mode
                    port = peer.ports[w.listener]
                    if (key, port, mode) in done:
                        continue
                    done.add((key, port, mode))
                    before = vsink.count()
                    args = ["--mode", mode, "-c", "1", "-m", "2", "-n", "2", "-s", "1K", "-t", "1"]
                    if mode != "plain":
                        args += ["--sni", SNI]
                    result, argv, rc = run_load(f"verify-{key}-{w.listener}", args, port,
                                                self.tmp, 60)
                    got = vsink.messages[before:]
                    what = f"{peer.label} {w.listener} ({mode})"
                    if rc != 0 or result.get("messages") != 2 or len(got) != 2:
                        raise BenchError(
                            f"verification: 2 messages through {what} on 127.0.0.1:{port}: "
                            f"smtp-load exit {rc}, reported {result.get('messages')}, the sink "
                            f"got {len(got)}; errors {result.get('errors')}\n  {' '.join(argv)}")
                    if key == "proxy":
                        head = got[0].split(b"\r\n\r\n", 1)[0]
                        if b"X-TLS-Status:" not in head or \
                                (mode != "plain") != (b"tls=TLSv1.3" in head):
                            raise BenchError(f"verification: the copy through {what} lacks "
                                             f"the expected X-TLS-Status:\n"
                                             f"{head.decode(errors='replace')}")
                    log(f"verified: 2 messages through {what} reached the sink")
        finally:
            vsink.close()

    def check_alive(self):
        """Between workloads: the sink and every peer still run."""
        for child in [self.sink] + [p.child for p in self.peers.values() if p.child]:
            if not child.alive():
                raise BenchError(f"{child.name} died (status {child.proc.returncode}):\n"
                                 f"{child.log_tail()}")

    # ---- runs

    def target_s(self, w):
        """Seconds a measured run aims at on the calibration path (the
        other paths take longer when they are slower)."""
        return 0.2 if self.opts.quick else w.target_s

    def client(self, w, key, args, kind, timeout):
        """One smtp-load client against key's listener; warm-ups and
        measured runs alike count their messages for the final check."""
        self.seq += 1
        result, argv, rc = run_load(f"load-{self.seq:03d}-{w.name}-{key}-{kind}", args,
                                    self.peers[key].ports[w.listener], self.tmp, timeout)
        self.client_messages += result.get("messages", 0)
        if rc != 0 or error_total(result):
            self.problems.append(f"{w.name} {LABEL[key]} {kind}: errors {result.get('errors')} "
                                 f"(exit {rc})")
        return result, argv

    def calibrate(self, w):
        """Sets the workload's count once, before its first repetition: a
        timed run on the calibration path measures the rate (a fixed-count
        workload keeps its count)."""
        if w.fixed_n:
            w.n = w.quick_n if self.opts.quick else w.fixed_n
            return
        key = w.calibrate_on
        args = w.base_args(key, self.opts.threads, self.opts.source_range)
        result, _ = self.client(w, key, args + ["-d", "0.5" if self.opts.quick else "2"],
                                "calibration", 120)
        rate = result.get("msgs_per_s", 0) if w.m else result.get("sessions_per_s", 0)
        if rate <= 0:
            raise BenchError(f"{w.name}: the calibration run on {LABEL[key]} moved nothing")
        unit = w.c * max(w.m, 1)
        w.n = max(unit, int(math.ceil(rate * self.target_s(w) / unit)) * unit)
        log(f"{w.name}: count {w.n} ({rate:.0f}/s on {LABEL[key]} for {self.target_s(w)}s)")

    def warm_up(self, w, key):
        """A short run on the path just before its measured one."""
        args = w.base_args(key, self.opts.threads, self.opts.source_range)
        if w.fixed_n:
            args += ["-n", str(w.c * max(w.m, 1))]
        else:
            args += ["-d", "0.2" if self.opts.quick else "1"]
        self.client(w, key, args, "warm-up", 120)

    def measure(self, w, key, rep):
        """The measured run of one path: smtp-load with the fixed count, the
        path's and the sink's CPU before and after."""
        peer = self.peers[key]
        args = w.base_args(key, self.opts.threads, self.opts.source_range) + ["-n", str(w.n)]
        cpu0 = peer.child.cpu_ticks() if peer.child else None
        sink0, busy0, t0 = self.sink.cpu_ticks(), machine_busy_ticks(), time.monotonic()
        result, argv = self.client(w, key, args, f"rep {rep}", 60 + 30 * self.target_s(w))
        cpu1 = peer.child.cpu_ticks() if peer.child else None
        sink1, busy1, t1 = self.sink.cpu_ticks(), machine_busy_ticks(), time.monotonic()
        self.commands.setdefault((w.name, key), " ".join(argv))
        rec = {"workload": w.name, "path": key, "rep": rep, "argv": argv, "result": result,
               "path_cpu_s": None if cpu0 is None else (cpu1 - cpu0) / CLK_TCK,
               "sink_cpu_s": (sink1 - sink0) / CLK_TCK, "time_wait_after": count_time_wait()}
        # The machine's busy time less the path's, the sink's and the load
        # generator's: CPU that processes the harness did not start took.
        cpu = result.get("cpu_s") or {}
        ours = (rec["path_cpu_s"] or 0) + rec["sink_cpu_s"] + cpu.get("user", 0) + \
            cpu.get("system", 0)
        wall = t1 - t0
        rec["foreign_cpu_share"] = max(0.0, (busy1 - busy0) / CLK_TCK - ours) / \
            (wall * (os.cpu_count() or 1)) if wall else None
        self.runs.append(rec)
        log(f"{w.name} rep {rep} {LABEL[key]}: {result.get('elapsed_s', 0):.2f}s "
            f"{result.get('msgs_per_s', 0):.0f} msgs/s "
            f"{result.get('handshakes_per_s', 0):.0f} hs/s "
            f"{result.get('mb_per_s', 0):.1f} MB/s errors {error_total(result)}")

    def idle(self, w, key, rep):
        """The idle workload on one path: RSS of the path's processes after
        a few warm-up sessions and once N sessions are open and idle. The
        path and the sink are fresh processes for it (Peer.restart)."""
        peer = self.peers[key]
        n = self.opts.idle_sessions
        peer.restart()
        self.restart_sink()
        self.client(w, key, ["--mode", "tls", "--tls-version", "1.3", "--sni", SNI, "-m", "0",
                             "-n", "20", "-c", "4", "-t", "1"], "warm-up", 60)
        time.sleep(0.5)
        rss0, sink0 = peer.child.rss_kib(), self.sink.rss_kib()
        args = w.base_args(key, self.opts.threads, self.opts.source_range) + ["--idle", str(n)]
        argv = [str(LOAD)] + args + ["--json", f"127.0.0.1:{peer.ports[w.listener]}"]
        self.commands.setdefault((w.name, key), " ".join(argv))
        self.seq += 1
        child = Child(f"load-{self.seq:03d}-idle-{key}", argv, self.tmp, capture=True)
        lines = queue.Queue()

        def reader():
            for raw in child.proc.stdout:
                lines.put(raw.decode(errors="replace"))
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        ready, out = None, []
        deadline = time.monotonic() + 60 + n / 50
        try:
            while ready is None:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise BenchError(f"idle {LABEL[key]}: no idle-ready line in time: "
                                     f"{' '.join(argv)}")
                if line is None:
                    raise BenchError(f"idle {LABEL[key]}: smtp-load ended before idle-ready "
                                     f"(exit {child.proc.wait()}):\n{child.log_tail()}")
                out.append(line)
                m = re.match(r"idle-ready (\d+)", line)
                if m:
                    ready = int(m.group(1))
            time.sleep(1.0)  # let the last handshakes' buffers settle
            rss1, sink1 = peer.child.rss_kib(), self.sink.rss_kib()
            child.signal_group(signal.SIGTERM)
            end = time.monotonic() + 60 + n / 100
            while True:
                try:
                    line = lines.get(timeout=max(0.1, end - time.monotonic()))
                except queue.Empty:
                    raise BenchError(f"idle {LABEL[key]}: smtp-load did not end after SIGTERM")
                if line is None:
                    break
                out.append(line)
            rc = child.proc.wait(timeout=10)
        finally:
            child.stop()
        result = parse_json_line("".join(out))
        if result is None or rc not in (0, 1):
            raise BenchError(f"idle {LABEL[key]}: smtp-load exited {rc} without a result:\n"
                             f"{child.log_tail()}")
        if rc != 0 or error_total(result) or ready < n:
            self.problems.append(f"idle {LABEL[key]} rep {rep}: {ready} of {n} sessions ready, "
                                 f"errors {result.get('errors')} (exit {rc})")
        rec = {"workload": w.name, "path": key, "rep": rep, "argv": argv, "result": result,
               "idle_ready": ready, "rss_before_kib": rss0, "rss_idle_kib": rss1,
               "sink_rss_before_kib": sink0, "sink_rss_idle_kib": sink1,
               "kib_per_session": (rss1 - rss0) / ready if ready else None,
               "sink_kib_per_session": (sink1 - sink0) / ready if ready else None,
               "time_wait_after": count_time_wait()}
        self.runs.append(rec)
        log(f"idle rep {rep} {LABEL[key]}: {ready} sessions, RSS {rss0} -> {rss1} KiB, "
            f"{rec['kib_per_session'] or 0:.1f} KiB/session")

    def workload(self, w):
        """All repetitions of one workload, every path in each."""
        if not w.idle:
            self.calibrate(w)
        for rep in range(1, self.opts.reps + 1):
            for key in [p for p in PATH_ORDER if p in w.paths]:
                if w.idle:
                    self.idle(w, key, rep)
                else:
                    self.warm_up(w, key)
                    self.measure(w, key, rep)
        self.check_alive()

    def stop_sink(self):
        """SIGTERM to the sink; adds the counts it prints to the totals."""
        self.sink.signal_group(signal.SIGTERM)
        try:
            out, _ = self.sink.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.sink.stop()
            raise BenchError("the sink did not end after SIGTERM")
        self.sink.stop()
        got = parse_json_line(out.decode(errors="replace"))
        if got is None:
            raise BenchError(f"the sink printed no counts:\n{self.sink.log_tail()}")
        for k in ("sessions", "messages", "message_bytes"):
            self.sink_counts[k] = self.sink_counts.get(k, 0) + got.get(k, 0)

    def restart_sink(self):
        """A fresh sink on the same port (the idle workload: see
        Peer.restart)."""
        self.stop_sink()
        self.sink = start_sink(self.tmp, self.sink_port, self.opts.sink_threads)

    def finish(self):
        """Stops the sink and compares what it received with what the
        clients reported delivered: fewer means messages were lost."""
        self.stop_sink()
        got = self.sink_counts.get("messages", 0)
        if got < self.client_messages:
            raise BenchError(f"the sink received {got} messages, the clients reported "
                             f"{self.client_messages} delivered")


# ---------------------------------------------------------------- crypto

def crypto_ceiling(seconds):
    """The crypto a TLS 1.3 server does per full ECDHE-ECDSA handshake,
    from BoringSSL's `bssl-tool speed` on one core: X25519 key share
    (base-point multiplication) + shared secret (arbitrary-point
    multiplication) + one ECDSA P-256 signature. See README.md for what
    each measured operation includes."""
    ops = {}
    # The 25519 group also times Ed25519, which the figure does not use:
    # this bssl-tool's -filter selects that whole group by "25519".
    for flt in ("25519", "ECDSA P-256"):
        proc = subprocess.run(["bssl-tool", "speed", "-filter", flt, "-timeout", str(seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=120, cwd=tempfile.gettempdir())
        for m in re.finditer(r"Did (\d+) (.+?) operations in (\d+)us", proc.stdout):
            ops[m.group(2)] = int(m.group(1)) * 1e6 / int(m.group(3))
    names = {"base": "Curve25519 base-point multiplication",
             "shared": "Curve25519 arbitrary point multiplication",
             "sign": "ECDSA P-256 signing"}
    missing = [v for v in names.values() if v not in ops]
    if missing:
        raise BenchError(f"bssl-tool speed printed no {', '.join(missing)}")
    base, shared, sign = (ops[names[k]] for k in ("base", "shared", "sign"))
    x25519 = 1 / (1 / base + 1 / shared)
    cost = 1 / x25519 + 1 / sign
    return {"x25519_base_ops": base, "x25519_shared_ops": shared, "x25519_ops": x25519,
            "p256_sign_ops": sign, "crypto_s_per_handshake": cost, "ceiling_hs_per_core": 1 / cost,
            "all_ops": ops}


# ---------------------------------------------------------------- report

def command_output(argv):
    """First line of a command's output (stdout or stderr), or why not."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired) as e:
        return f"({e.__class__.__name__})"


def package_version(name):
    """The installed Debian version of a package, or '?'."""
    try:
        return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name],
                              capture_output=True, text=True, timeout=10).stdout or "?"
    except OSError:
        return "?"


def machine_info():
    """What the figures were measured on."""
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    sysctl = {}
    for key in ("net/ipv4/tcp_tw_reuse", "net/ipv4/ip_local_port_range"):
        try:
            sysctl[key.split("/")[-1]] = " ".join(Path("/proc/sys/" + key).read_text().split())
        except OSError:
            sysctl[key.split("/")[-1]] = "?"
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "proxy": command_output([str(PROXY), "--version"]) +
        f" (BoringSSL: android-libboringssl {package_version('android-libboringssl')})",
        "nginx": command_output(["nginx", "-v"]) +
        f" (nginx-light {package_version('nginx-light')}, "
        f"libnginx-mod-mail {package_version('libnginx-mod-mail')})",
        "hitch": command_output(["hitch", "--version"]) + f" ({package_version('hitch')})",
        "openssl (nginx, hitch)": f"libssl3 {package_version('libssl3')}",
        "python": platform.python_version(),
        "RLIMIT_NOFILE": f"soft {soft}, hard {hard}", **sysctl,
    }


def median(values):
    """Median of the values that are not None, or None."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs):
    """Medians over repetitions for every (workload, path)."""
    summary = {}
    for rec in runs:
        summary.setdefault((rec["workload"], rec["path"]), []).append(rec)
    out = {}
    for key, recs in summary.items():
        def per(fn):
            vals = []
            for r in recs:
                try:
                    vals.append(fn(r))
                except (KeyError, TypeError, ZeroDivisionError):
                    vals.append(None)
            return median(vals)
        res = lambda r: r["result"]
        out[key] = {
            "wall_s": per(lambda r: res(r)["elapsed_s"]),
            "msgs_per_s": per(lambda r: res(r)["msgs_per_s"] if res(r)["messages"] else None),
            "hs_per_s": per(lambda r: res(r)["handshakes_per_s"]
                            if res(r)["handshakes"] else None),
            "mb_per_s": per(lambda r: res(r)["mb_per_s"] if res(r)["messages"] else None),
            "p50_data_ms": per(lambda r: res(r)["latency_ms"]["data"]["p50"]
                               if res(r)["latency_ms"]["data"]["n"] else None),
            "p99_data_ms": per(lambda r: res(r)["latency_ms"]["data"]["p99"]
                               if res(r)["latency_ms"]["data"]["n"] else None),
            "cpu_ms_per_hs": per(lambda r: 1000 * r["path_cpu_s"] / res(r)["handshakes"]),
            "cpu_ms_per_msg": per(lambda r: 1000 * r["path_cpu_s"] / res(r)["messages"]),
            "hs_per_cpu_s": per(lambda r: res(r)["handshakes"] / r["path_cpu_s"]),
            "resumed_share": per(lambda r: res(r)["resumed"] / res(r)["handshakes"]
                                 if "--resume" in r["argv"] else None),
            "kib_per_session": per(lambda r: r["kib_per_session"]),
            "sink_kib_per_session": per(lambda r: r["sink_kib_per_session"]),
            "errors": sum(error_total(r["result"]) for r in recs),
            "reps": len(recs),
        }
    return out


def fmt(value, spec):
    """A table cell: '-' when the figure does not apply."""
    return "-" if value is None else format(value, spec)


def print_table(summary, workloads):
    """The table of medians, one line per (workload, path)."""
    cols = [("wall s", "wall_s", ".2f"), ("msgs/s", "msgs_per_s", ".0f"),
            ("hs/s", "hs_per_s", ".0f"), ("MB/s", "mb_per_s", ".1f"),
            ("p50 data ms", "p50_data_ms", ".2f"), ("p99 data ms", "p99_data_ms", ".2f"),
            ("cpu ms/hs", "cpu_ms_per_hs", ".3f"), ("cpu ms/msg", "cpu_ms_per_msg", ".3f"),
            ("resumed", "resumed_share", ".2f"), ("KiB/session", "kib_per_session", ".1f"),
            ("errors", "errors", "d")]
    widths = [max(len(c[0]), 7) for c in cols]
    head = f"{'workload':<14} {'path':<22}" + "".join(
        f" {c[0]:>{wd}}" for c, wd in zip(cols, widths))
    print(head)
    print("-" * len(head))
    for w in workloads:
        for key in [p for p in PATH_ORDER if p in w.paths]:
            s = summary.get((w.name, key))
            if not s:
                continue
            label = LABEL[key] + (" (plain)" if key == "direct" and w.mode != "plain" else "")
            if w.idle:
                s = dict(s, wall_s=None, msgs_per_s=None, hs_per_s=None, mb_per_s=None)
            print(f"{w.name:<14} {label:<22}" + "".join(
                f" {fmt(s[c[1]], c[2]):>{wd}}" for c, wd in zip(cols, widths)))


def ratio(summary, wl, a, b, field):
    """summary[wl,a][field] / summary[wl,b][field], or None."""
    x = summary.get((wl, a), {}).get(field)
    y = summary.get((wl, b), {}).get(field)
    return x / y if x is not None and y else None


# The ratios the report prints: workload, numerator path, denominator
# path, figure, and the target (None: a figure without one).
RATIOS = [
    ("25-plain", "proxy", "direct", "wall_s", ("<=", 1.5)),
    ("25-plain", "nginx", "proxy", "wall_s", None),
    ("587-starttls", "proxy", "nginx", "msgs_per_s", (">=", 2)),
    ("465-new", "proxy", "hitch", "hs_per_s", (">=", 1)),
    ("465-new", "proxy", "nginx", "hs_per_s", None),
    ("465-resumed", "proxy", "hitch", "hs_per_s", None),
    ("465-resumed", "proxy", "nginx", "hs_per_s", None),
    ("465-handshake", "proxy", "hitch", "hs_per_s", None),
    ("465-handshake", "proxy", "nginx", "hs_per_s", None),
    ("465-10MiB", "proxy", "hitch", "mb_per_s", (">=", 0.9)),
    ("465-10MiB", "proxy", "nginx", "mb_per_s", None),
    ("idle", "proxy", "nginx", "kib_per_session", None),
    ("idle", "proxy", "hitch", "kib_per_session", None),
]
FIELD_NAME = {"wall_s": "wall time", "msgs_per_s": "msgs/s", "hs_per_s": "hs/s",
              "mb_per_s": "MB/s", "kib_per_session": "KiB/session"}


def print_ratios(summary):
    """Every ratio, met or not; those without a target are figures."""
    print("ratios (targets):")
    for wl, a, b, field, target in RATIOS:
        what = f"{a}/{b} {FIELD_NAME[field]}"
        value = ratio(summary, wl, a, b, field)
        if value is None:
            verdict = "n/a" if any(k[0] == wl for k in summary) else "n/a (not run)"
            print(f"  {wl:<14} {what:<26} {verdict}")
        elif target:
            op, limit = target
            met = value <= limit if op == "<=" else value >= limit
            print(f"  {wl:<14} {what:<26} {value:6.2f}  ({op} {limit})  "
                  f"{'met' if met else 'NOT met'}")
        else:
            print(f"  {wl:<14} {what:<26} {value:6.2f}  (figure)")
    shares = [(LABEL[p], summary.get(("465-resumed", p), {}).get("resumed_share"))
              for p in ("proxy", "nginx", "hitch")]
    if any(v is not None for _, v in shares):
        print("  465-resumed    resumed share (resumed/handshakes): " +
              ", ".join(f"{n} {fmt(v, '.2f')}" for n, v in shares))


def print_crypto(summary, crypto):
    """The crypto ceiling and each TLS path's 465-handshake CPU against it."""
    if crypto is None:
        return
    print(f"crypto ceiling (bssl-tool speed, one core): X25519 {crypto['x25519_ops']:.0f} ops/s "
          f"(key share {crypto['x25519_base_ops']:.0f}/s + shared secret "
          f"{crypto['x25519_shared_ops']:.0f}/s), P-256 sign {crypto['p256_sign_ops']:.0f} ops/s "
          f"-> {crypto['ceiling_hs_per_core']:.0f} handshakes/s/core "
          f"({crypto['crypto_s_per_handshake'] * 1e6:.0f} us of crypto per handshake)")
    for key in ("proxy", "nginx", "hitch"):
        s = summary.get(("465-handshake", key))
        if not s or not s["hs_per_cpu_s"]:
            print(f"  {LABEL[key]:<15} 465-handshake not run")
            continue
        frac = s["hs_per_cpu_s"] / crypto["ceiling_hs_per_core"]
        times = (s["cpu_ms_per_hs"] / 1000) / crypto["crypto_s_per_handshake"]
        print(f"  {LABEL[key]:<15} {s['hs_per_cpu_s']:.0f} handshakes per CPU-second = {frac:.2f} "
              f"of ceiling; cpu/handshake {s['cpu_ms_per_hs'] * 1000:.0f} us = {times:.2f} x "
              f"crypto (<= 1.5) {'met' if times <= 1.5 else 'NOT met'}")


def print_report(bench, workloads, machine, crypto):
    """Everything on stdout: machine, commands, table, ratios, ceiling, notes."""
    summary = summarize(bench.runs)
    print("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()))
    print(f"options: reps {bench.opts.reps}, {'quick' if bench.opts.quick else 'full'}, "
          f"smtp-load -t {bench.opts.threads}, sink -t {bench.opts.sink_threads}, "
          f"idle sessions {bench.opts.idle_sessions}")
    print("smtp-load commands (the measured run of each path):")
    for w in workloads:
        for key in [p for p in PATH_ORDER if p in w.paths]:
            if (w.name, key) in bench.commands:
                print(f"  {w.name:<14} {LABEL[key]:<15} {bench.commands[(w.name, key)]}")
    print()
    print_table(summary, workloads)
    print()
    print_ratios(summary)
    print_crypto(summary, crypto)
    idle = [(LABEL[p], summary.get(("idle", p), {}).get("sink_kib_per_session"))
            for p in ("proxy", "nginx", "hitch") if ("idle", p) in summary]
    print("notes:")
    if idle:
        print("  idle: KiB/session = growth of the summed VmRSS of the path's processes (its "
              "backend connection included; nginx has none: it connects the backend at the "
              "first RCPT) / sessions; the sink's own growth, not counted: " +
              ", ".join(f"{n} run {fmt(v, '.1f')} KiB/session" for n, v in idle))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"  RLIMIT_NOFILE hard limit {hard}" + (
        " and it cannot be raised (no CAP_SYS_RESOURCE): 10,000 idle sessions would need 20,000 "
        "descriptors in the proxy (one process), so the idle workload opens at most "
        f"{(hard - 100) // 2}" if not has_cap(CAP_SYS_RESOURCE) else " (CAP_SYS_RESOURCE held)"))
    tw = max((r.get("time_wait_after", 0) for r in bench.runs), default=0)
    print(f"  TIME_WAIT sockets after a run: at most {tw} (ephemeral range "
          f"{machine.get('ip_local_port_range')}, tcp_tw_reuse {machine.get('tcp_tw_reuse')}); "
          f"{exhaustion_note(bench.runs)}")
    shares = [r["foreign_cpu_share"] for r in bench.runs
              if r.get("foreign_cpu_share") is not None]
    if shares:
        mid = statistics.median(shares)
        print(f"  CPU taken by processes the harness did not start, during the measured runs: "
              f"median {mid:.0%} of the machine, at most {max(shares):.0%}" +
              (" (the figures are skewed: run again on a quiet machine)" if mid > 0.1 else ""))
    print("  nginx and hitch do their TLS with OpenSSL 3.0, the proxy with BoringSSL; the crypto "
          "ceiling is BoringSSL's")
    for note in bench.notes:
        print("  " + note)
    if bench.sink_counts:
        print(f"  the sink received {bench.sink_counts.get('messages')} messages in "
              f"{bench.sink_counts.get('sessions')} sessions; the clients reported "
              f"{bench.client_messages} delivered")


def exhaustion_note(runs):
    """Whether any run failed to connect, the way ephemeral ports running
    out (or a full accept queue) shows in smtp-load's errors."""
    hits = [f"{r['workload']} {LABEL[r['path']]} rep {r['rep']} "
            f"({r['result']['errors']['connect']}, {r.get('time_wait_after')} in TIME_WAIT after)"
            for r in runs if (r["result"].get("errors") or {}).get("connect")]
    return ("connect errors, maybe ports running out, in " + ", ".join(hits)) if hits else \
        "no connect errors: no run ran out of ephemeral ports"


def has_cap(bit):
    """Whether this process's effective capabilities include bit."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return False


# ---------------------------------------------------------------- main

def check_prerequisites():
    """Fails with what to build or install when something is missing."""
    missing = []
    if not os.access(LOAD, os.X_OK):
        missing.append(f"{LOAD} (make tools)")
    if not os.access(PROXY, os.X_OK):
        missing.append(f"{PROXY.relative_to(ROOT)} (make)")
    if not CERT.exists() or not KEY.exists():
        missing.append("the test certificates (make certs)")
    if not shutil.which("bssl-tool"):
        missing.append("bssl-tool (apt-get install android-boringssl, part of make deps)")
    peers = [n for n, ok in (("nginx", shutil.which("nginx")), ("hitch", shutil.which("hitch")),
                             (str(MAIL_MODULE), MAIL_MODULE.exists())) if not ok]
    if peers:
        missing.append(f"{', '.join(peers)}: {INSTALL_HINT}")
    if missing:
        raise BenchError("missing: " + "; ".join(missing))


def parse_args(argv):
    """Command-line options; see tools/bench/README.md."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--quick", action="store_true",
                    help="small counts: a smoke run in under a minute")
    ap.add_argument("--only", metavar="WORKLOAD",
                    help="comma-separated workloads: " + ", ".join(w.name for w in WORKLOADS))
    ap.add_argument("--json", metavar="FILE", help="write all raw results to FILE")
    ap.add_argument("--idle-sessions", type=int, default=None,
                    help="sessions of the idle workload (default 9900, --quick 500)")
    ap.add_argument("--threads", type=int, default=2,
                    help="smtp-load -t for every path (default 2)")
    ap.add_argument("--sink-threads", type=int, default=1, help="the sink's -t (default 1)")
    ap.add_argument("--source-range", type=int, default=50,
                    help="smtp-load --source-range: sources over 127.0.0.1..N (default 50)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs, configs)")
    opts = ap.parse_args(argv)
    if opts.reps is None:
        opts.reps = 1 if opts.quick else 3
    if opts.reps < 1:
        ap.error("--reps must be at least 1")
    if opts.idle_sessions is None:
        opts.idle_sessions = 500 if opts.quick else 9900
    return opts


def select_workloads(opts):
    """The workloads --only names (all by default)."""
    if not opts.only:
        return WORKLOADS
    names = [n.strip() for n in opts.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in {w.name for w in WORKLOADS}]
    if unknown:
        raise BenchError(f"unknown workload {', '.join(unknown)}; known: "
                         f"{', '.join(w.name for w in WORKLOADS)}")
    return [w for w in WORKLOADS if w.name in names]


def on_sigterm(signum, frame):
    """SIGINT, SIGTERM and SIGHUP end the run: the finally clauses stop
    every child."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv):
    """Runs the benchmark; 0 when all went well, 1 when runs had errors, 2
    when the run could not be done."""
    opts = parse_args(argv)
    # SIGINT too: a shell starts background jobs with it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_sigterm)
    tmp = tempfile.mkdtemp(prefix="smtp-bench-")
    bench = Bench(opts, tmp)
    try:
        check_prerequisites()
        workloads = select_workloads(opts)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if any(w.idle for w in workloads) and 2 * opts.idle_sessions + 100 > hard:
            capped = (hard - 100) // 2
            bench.notes.append(f"idle: --idle-sessions {opts.idle_sessions} needs "
                               f"{2 * opts.idle_sessions + 100} descriptors in one process; "
                               f"capped to {capped}")
            opts.idle_sessions = capped
        machine = machine_info()
        log("crypto ceiling: bssl-tool speed")
        crypto = crypto_ceiling(1 if opts.quick else 2)
        bench.start(workloads)
        for w in workloads:
            log(f"workload {w.name}")
            bench.workload(w)
        bench.finish()
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        print(f"bench: logs and configurations kept in {tmp}", file=sys.stderr)
        opts.keep = True
        return 2
    except KeyboardInterrupt as e:
        print(f"bench: interrupted ({e or 'Ctrl-C'}); logs in {tmp}", file=sys.stderr)
        opts.keep = True
        return 130
    finally:
        stop_all()
        if opts.json:
            with open(opts.json, "w") as f:
                json.dump({"options": vars(opts), "machine": locals().get("machine"),
                           "crypto": locals().get("crypto"), "runs": bench.runs,
                           "sink": bench.sink_counts,
                           "client_messages": bench.client_messages, "problems": bench.problems},
                          f, indent=1, default=str)
        if not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print_report(bench, workloads, machine, crypto)
    if bench.problems:
        print("bench: FAILED: runs with errors:\n  " + "\n  ".join(bench.problems),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

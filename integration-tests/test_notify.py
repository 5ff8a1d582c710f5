"""The service manager's readiness protocol (sd_notify, daemon/notify.c):
with NOTIFY_SOCKET set, the proxy says READY=1 only once every listener
and the metrics endpoint accept, RELOADING=1 (with MONOTONIC_USEC) and
READY=1 around a SIGHUP, good or not, and STOPPING=1 on SIGTERM. The
test plays systemd: it binds the unix datagram socket itself."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from peers import SmtpSink, free_port
from proxyproc import Proxy


class NotifySocket:
    """A bound AF_UNIX datagram socket, as systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def recv(self, timeout=10.0):
        """One message as a dict of its KEY=value lines (bounded wait)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no notification within %.0fs" % timeout)
        fields = {}
        for line in data.decode().split("\n"):
            if line:
                k, _, v = line.partition("=")
                fields[k] = v
        return fields

    def pending(self):
        """Messages already queued, without waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        return out

    def recv_with_sender(self, timeout=10.0):
        """One message and the pid the kernel says sent it (SO_PASSCRED)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            raise AssertionError("no notification within %.0fs" % timeout)
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        return data.decode(), pid

    def fill(self):
        """Queue datagrams until the socket takes no more: the proxy's next
        notification then blocks in sendmsg until the queue is drained.
        Returns how many were queued."""
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.setblocking(False)
        n = 0
        try:
            while n < 10000:
                filler.sendto(b"FILLER=1", self.path)
                n += 1
        except BlockingIOError:
            pass
        finally:
            filler.close()
        return n

    def close(self):
        self.sock.close()


# x86_64 sendmsg(2), the call sd_notify makes.
SYS_SENDMSG = 46


def blocked_in_sendmsg(pid):
    """Whether the thread |pid| (the main thread) sits in sendmsg now."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            return f.read().split()[0] == str(SYS_SENDMSG)
    except (OSError, IndexError):
        return False


class NotifyProxy(Proxy):
    """A Proxy started with NOTIFY_SOCKET, without waiting for its ports
    (the test waits for READY=1 instead)."""

    def start_notifying(self, notify_path):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        self.logfile = open(self.log_path, "wb")
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf_path],
                                     stdout=self.logfile, stderr=subprocess.STDOUT,
                                     env=env, cwd=self.workdir)
        return self


def accepts(port):
    """One connection attempt, no retry: the port accepts now or not."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


class NotifyTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-notify-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)
        self.notify = NotifySocket(os.path.join(self.dir, "notify.sock"))
        self.addCleanup(self.notify.close)
        self.pdir = os.path.join(self.dir, "proxy")
        os.makedirs(self.pdir)
        self.metrics_port = free_port()
        self.proxy = NotifyProxy(
            self.pdir, "%s:%d" % self.sink.address,
            listeners=[{"name": "smtp", "kind": "smtp", "tls": "none"},
                       {"name": "submission", "kind": "submission", "tls": "none",
                        "require_tls": "no"}],
            extra="\n[metrics]\naddress = 127.0.0.1:%d\n" % self.metrics_port)

    def start(self):
        """Starts the proxy and returns its first notification, checking
        what was true when the proxy sent it: the socket's queue is full
        first, so the proxy's READY=1 blocks in sendmsg, and while it is
        blocked every port must accept and the log must say the start is
        complete."""
        queued = self.notify.fill()
        self.proxy.start_notifying(self.notify.path)
        self.addCleanup(self.proxy.stop)
        # A failed check must not leave the proxy blocked: drain first.
        self.addCleanup(self.notify.pending)
        pid = self.proxy.proc.pid
        for _ in range(200):
            if blocked_in_sendmsg(pid) or self.proxy.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.assertTrue(blocked_in_sendmsg(pid),
                        "the proxy never notified:\n" + self.proxy.log())
        # Now, and without retrying.
        for name in ("smtp", "submission"):
            self.assertTrue(accepts(self.proxy.port(name)),
                            "READY=1 before %s accepts:\n%s" % (name, self.proxy.log()))
        self.assertTrue(accepts(self.metrics_port), "READY=1 before the metrics endpoint")
        self.assertIn("event=started", self.proxy.log())
        for _ in range(queued):
            self.assertEqual(self.notify.recv(), {"FILLER": "1"})
        return self.notify.recv()

    def test_ready_only_once_the_ports_accept(self):
        ready = self.start()
        self.assertEqual(ready.get("READY"), "1", ready)
        self.assertEqual(ready.get("STATUS"), "serving", ready)
        # One READY at start, nothing else.
        time.sleep(0.2)
        self.assertEqual(self.notify.pending(), [])

    def test_reload_says_reloading_then_ready(self):
        self.start()
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        self.proxy.signal(signal.SIGHUP)
        reloading = self.notify.recv()
        after = time.clock_gettime(time.CLOCK_MONOTONIC)
        self.assertEqual(reloading.get("RELOADING"), "1", reloading)
        # CLOCK_MONOTONIC in microseconds, taken during the reload.
        usec = int(reloading["MONOTONIC_USEC"])
        self.assertLessEqual(before * 1e6 - 1000, usec)
        self.assertLessEqual(usec, after * 1e6 + 1000)
        ready = self.notify.recv()
        self.assertEqual(ready, {"READY": "1", "STATUS": "serving; reloaded"})
        self.proxy.wait_log("event=reload result=ok")

    def test_failed_reload_still_ends_with_ready(self):
        self.start()
        with open(self.proxy.conf_path, "a") as f:
            f.write("\n[no such section]\n")
        self.proxy.signal(signal.SIGHUP)
        self.assertEqual(self.notify.recv().get("RELOADING"), "1")
        ready = self.notify.recv()
        self.assertEqual(ready.get("READY"), "1", ready)
        self.assertIn("reload failed", ready.get("STATUS", ""))
        self.proxy.wait_log("event=reload result=failed")
        self.assertTrue(accepts(self.proxy.port("smtp")))

    def test_sigterm_says_stopping(self):
        self.start()
        self.proxy.signal(signal.SIGTERM)
        self.assertEqual(self.notify.recv(), {"STOPPING": "1"})
        self.proxy.proc.wait(timeout=15)
        self.assertEqual(self.proxy.proc.returncode, 0, self.proxy.log())
        self.assertEqual(self.notify.pending(), [])

    def test_ready_comes_from_the_privilege_separated_child(self):
        # Started as root with [proxy] user, the process systemd starts
        # is the parent; READY=1 comes from the child, which is why the
        # unit says NotifyAccess=all.
        os.chmod(self.dir, 0o755)
        os.chmod(self.notify.path, 0o777)
        self.proxy.proxy_keys["user"] = "nobody"
        self.proxy.start_notifying(self.notify.path)
        self.addCleanup(self.proxy.stop)
        data, sender = self.notify.recv_with_sender()
        self.assertEqual(data, "READY=1\nSTATUS=serving")
        m = re.search(r"event=privsep_parent pid=(\d+) child=(\d+)",
                      self.proxy.wait_log("event=privsep_parent"))
        self.assertEqual(int(m.group(1)), self.proxy.proc.pid)
        self.assertEqual(sender, int(m.group(2)))
        self.assertNotEqual(sender, self.proxy.proc.pid)

    def test_no_ready_when_a_port_cannot_be_bound(self):
        taken = socket.socket()
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        self.proxy.listeners[0]["port"] = taken.getsockname()[1]
        self.proxy.start_notifying(self.notify.path)
        self.addCleanup(self.proxy.stop, False)
        self.proxy.proc.wait(timeout=15)
        self.assertNotEqual(self.proxy.proc.returncode, 0, self.proxy.log())
        self.assertEqual(self.notify.pending(), [])


if __name__ == "__main__":
    unittest.main()

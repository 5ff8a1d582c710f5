"""Where log lines go ([proxy] log_target = stderr | syslog | file, SIGUSR1
reopens the file), and [tls] watch: a certificate replaced on disk is
served without SIGHUP, a burst of changes is one reload, a broken file
keeps the old certificate.

syslog: glibc's syslog(3) writes to /dev/log and nothing else, so the
proxy runs in a private mount namespace (unshare, as root: the tests run
as root in CI) where /dev/log is a unix datagram socket this test binds.
When the machine has no /dev/log at all, an overlay over /dev inside that
namespace provides the name to mount over; the machine's /dev is never
touched. Nothing in the proxy knows about the test.

Waits are bounded polls with deadlines; nothing asserts on a duration.
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from peers import SmtpSink
from proxyproc import PROXY_BIN, ROOT, Proxy

CERTS = os.path.join(ROOT, "certs", "test")
TOOL_TIMEOUT = 30
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warning|info|debug) ")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def poll(check, what, timeout=30.0, interval=0.05):
    """check() until it returns something true; that, or AssertionError
    naming |what| after |timeout| seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("gave up waiting for %s" % what)
        time.sleep(interval)


HELO = "client.src.test"


def one_session(port):
    """A session that ends at once: one event=end line with helo=HELO
    (the harness's own probe of the port has none)."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        s.ehlo(HELO)
        s.quit()
    finally:
        s.close()


def rewrite_config(proxy, **proxy_keys):
    """Rewrite |proxy|'s file with changed [proxy] keys, same ports."""
    proxy.proxy_keys.update(proxy_keys)
    for l in proxy.listeners:
        l["port"] = proxy.ports[l["name"]]
    with open(proxy.conf_path, "w") as f:
        f.write(proxy.config_text())


class ProxyTest(unittest.TestCase):
    """A backend (smtp-sink) and a helper to make a proxy in a fresh directory."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-logwatch-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)

    def make_proxy(self, proxy=None, extra="", binary=None, listeners=None):
        pdir = os.path.join(self.dir, "proxy")
        os.makedirs(pdir, exist_ok=True)
        p = Proxy(pdir, "%s:%d" % self.sink.address, proxy=proxy, extra=extra,
                  binary=binary, listeners=listeners)
        return p

    def start(self, proxy):
        proxy.start()
        self.addCleanup(proxy.stop)
        return proxy


# ---------------------------------------------------------------- file

class LogFileTest(ProxyTest):

    def test_log_target_file_appends_the_lines_to_log_file_not_stderr(self):
        path = os.path.join(self.dir, "logs", "proxy.log")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write("an older line\n")
        p = self.start(self.make_proxy({"log_target": "file", "log_file": path}))
        one_session(p.port())
        text = poll(lambda: "event=end" in read(path) and read(path), "event=end in log_file")
        self.assertTrue(text.startswith("an older line\n"), "not appended:\n" + text)
        self.assertIn("event=started", text)
        for line in text.splitlines()[1:]:
            self.assertRegex(line, LINE)
        self.assertNotIn("event=end", p.log())

    def test_new_log_file_is_made_with_mode_0640(self):
        path = os.path.join(self.dir, "new.log")
        old = os.umask(0o022)
        try:
            self.start(self.make_proxy({"log_target": "file", "log_file": path}))
        finally:
            os.umask(old)
        poll(lambda: "event=started" in read(path), "event=started in log_file")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)

    def test_sigusr1_after_logrotate_renamed_the_file_loses_no_line(self):
        path = os.path.join(self.dir, "proxy.log")
        rotated = path + ".1"
        p = self.start(self.make_proxy({"log_target": "file", "log_file": path}))
        poll(lambda: "event=started" in read(path), "event=started in log_file")
        # Sessions from four clients run while the file is renamed and
        # reopened; every one of them must leave its end line somewhere.
        done = []
        errors = []
        stop = threading.Event()

        def client():
            try:
                while not stop.is_set():
                    one_session(p.port())
                    done.append(1)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            poll(lambda: len(done) >= 20, "20 sessions before the rotation")
            os.rename(path, rotated)
            p.signal(signal.SIGUSR1)
            poll(lambda: "event=log_reopen result=ok" in read(path), "event=log_reopen in the new file")
            mark = len(done)
            poll(lambda: len(done) >= mark + 20, "20 sessions after the rotation")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        self.assertEqual(errors, [])
        for _ in range(3):
            one_session(p.port())
        total = len(done) + 3

        def ends():
            return sum(1 for f in (path, rotated) for line in read(f).splitlines()
                       if " event=end " in line and " helo=%s " % HELO in line)

        poll(lambda: ends() >= total, "%d end lines" % total)
        old_text, new_text = read(rotated), read(path)
        self.assertEqual(ends(), total)
        self.assertIn("event=end", old_text)
        self.assertIn("event=end", new_text)
        self.assertIn("event=started", old_text)
        self.assertNotIn("event=started", new_text)
        # Whole lines only, in both files.
        for text in (old_text, new_text):
            self.assertTrue(text.endswith("\n"))
            for line in text.splitlines():
                self.assertRegex(line, LINE)

    def test_log_file_that_cannot_be_opened_stops_the_start_with_exit_1(self):
        p = self.make_proxy({"log_target": "file",
                             "log_file": os.path.join(self.dir, "no", "such", "dir.log")})
        with open(p.conf_path, "w") as f:
            f.write(p.config_text())
        r = subprocess.run([PROXY_BIN, "-c", p.conf_path], capture_output=True,
                           timeout=TOOL_TIMEOUT)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"cannot open log_file", r.stderr)
        self.assertIn(b"No such file or directory", r.stderr)

    def test_reload_to_a_file_that_cannot_be_opened_keeps_the_old_file(self):
        path = os.path.join(self.dir, "proxy.log")
        p = self.start(self.make_proxy({"log_target": "file", "log_file": path}))
        poll(lambda: "event=started" in read(path), "event=started in log_file")
        rewrite_config(p, log_file=os.path.join(self.dir, "no", "such", "dir.log"))
        p.signal(signal.SIGHUP)
        text = poll(lambda: "event=reload result=" in read(path) and read(path),
                    "the reload's line in the old file")
        self.assertIn("event=log_target result=failed", text)
        self.assertIn("cannot open log_file", text)
        one_session(p.port())
        poll(lambda: "event=end" in read(path), "a later session in the old file")

    def test_reload_moves_the_lines_from_stderr_to_a_file(self):
        path = os.path.join(self.dir, "proxy.log")
        p = self.start(self.make_proxy())
        p.wait_log("event=started")
        rewrite_config(p, log_target="file", log_file=path)
        p.signal(signal.SIGHUP)
        poll(lambda: "event=reload result=ok" in read(path), "the reload's line in the file")
        one_session(p.port())
        # The session made after the reload is wholly in the file, its
        # connect and end lines, and nowhere on stderr. (Proxy.start's own
        # port probe may straddle the reload: connect on stderr, end in
        # the file.)
        def whole_session():
            text = read(path)
            ends = set(re.findall(r"event=end client=\S+ port=(\d+)", text))
            connects = set(re.findall(r"event=connect client=\S+ port=(\d+)", text))
            return sorted(ends & connects)
        ports = poll(whole_session, "a whole session in the file")
        for port in ports:
            self.assertNotIn(" port=%s " % port, p.log())


# ---------------------------------------------------------------- syslog

WRAPPER = """#!/bin/sh
# The proxy in a private mount namespace whose /dev/log is the test's socket.
exec unshare --mount --propagation private -- /bin/sh -c '
set -e
if [ ! -e /dev/log ] && [ ! -L /dev/log ]; then
    mount -t overlay overlay -o lowerdir=/dev,upperdir={d}/upper,workdir={d}/work /dev
    touch /dev/log
fi
mount --bind {d}/log.sock /dev/log
exec "$@"' sh {binary} "$@"
"""


class SyslogTest(ProxyTest):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root for a mount namespace over /dev/log")
        if shutil.which("unshare") is None:
            self.skipTest("unshare is missing: install util-linux")
        self.ns = os.path.join(self.dir, "ns")
        for d in ("upper", "work"):
            os.makedirs(os.path.join(self.ns, d))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(os.path.join(self.ns, "log.sock"))
        os.chmod(os.path.join(self.ns, "log.sock"), 0o666)
        self.wrapper = os.path.join(self.ns, "run-proxy")
        with open(self.wrapper, "w") as f:
            f.write(WRAPPER.format(d=self.ns, binary=PROXY_BIN))
        os.chmod(self.wrapper, 0o755)
        self.received = []

    def datagram_with(self, needle, timeout=30.0):
        """The first datagram received holding |needle| (bounded)."""
        deadline = time.monotonic() + timeout
        for d in self.received:
            if needle in d:
                return d
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536).decode("utf-8", "replace")
            except socket.timeout:
                break
            self.received.append(d)
            if needle in d:
                return d
        self.fail("no syslog datagram with %r; got:\n%s" % (needle, "\n".join(self.received)))

    def test_log_target_syslog_sends_the_facility_the_level_and_no_timestamp(self):
        p = self.start(self.make_proxy({"log_target": "syslog", "log_facility": "local3"},
                                       binary=self.wrapper))
        started = self.datagram_with("event=started")
        # <PRI> = local3 (19) * 8 + info (6); "ident[pid]: " from openlog's
        # LOG_PID; then the line without its timestamp.
        m = re.match(r"^<(\d+)>.*? smtp-tls-proxy\[(\d+)\]: (.*)$", started)
        self.assertIsNotNone(m, started)
        self.assertEqual(int(m.group(1)), 19 * 8 + 6)
        self.assertEqual(int(m.group(2)), p.proc.pid)
        self.assertTrue(m.group(3).startswith("level=info event=started "), m.group(3))
        # Root without [proxy] user starts with a warning (allow_root).
        warning = self.datagram_with(": level=warning ")
        self.assertTrue(warning.startswith("<%d>" % (19 * 8 + 4)), warning)
        one_session(p.port())
        end = self.datagram_with(" event=end ")
        self.assertTrue(end.startswith("<158>"), end)
        self.assertNotRegex(end, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
        self.assertNotIn("event=end", p.log())

    def test_syslog_lines_are_json_objects_with_log_format_json(self):
        p = self.start(self.make_proxy({"log_target": "syslog", "log_facility": "mail"},
                                       binary=self.wrapper))
        self.datagram_with("event=started")
        rewrite_config(p, log_format="json", log_facility="daemon")
        p.signal(signal.SIGHUP)
        line = self.datagram_with('"event":"reload"')
        m = re.match(r"^<(\d+)>.*? smtp-tls-proxy\[\d+\]: (\{.*\})$", line)
        self.assertIsNotNone(m, line)
        # daemon (3) * 8 + info (6): the facility changed with the reload.
        self.assertEqual(int(m.group(1)), 3 * 8 + 6)
        self.assertTrue(m.group(2).startswith('{"level":"info","event":"reload","result":"ok"'),
                        m.group(2))
        self.assertNotIn('"time"', m.group(2))


# ---------------------------------------------------------------- watch

def fingerprint_of_pem(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                       input=pem.encode(), capture_output=True, timeout=TOOL_TIMEOUT)
    if r.returncode != 0:
        return None
    return r.stdout.decode().strip().split("=", 1)[1]


def file_fingerprint(path):
    return fingerprint_of_pem(read(path))


def served_fingerprint(port):
    """SHA-256 fingerprint of the leaf openssl s_client gets after STARTTLS."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-starttls", "smtp"], input=b"QUIT\r\n", capture_output=True,
                       timeout=TOOL_TIMEOUT)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  r.stdout.decode("utf-8", "replace"), re.S)
    return fingerprint_of_pem(m.group(0)) if m else None


def replace_file(path, src=None, data=None):
    """Write the new content next to |path| and rename it over, as
    certbot and editors do."""
    tmp = path + ".tmp"
    if src is not None:
        shutil.copyfile(src, tmp)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
    os.rename(tmp, path)


WATCH_DELAY = 1.0


class WatchTest(ProxyTest):
    """The proxy's one certificate lives in a directory of the test; the
    mx-ecdsa certificate first, other (mail.other.test) as the new one."""

    def setUp(self):
        super().setUp()
        self.certdir = os.path.join(self.dir, "certs")
        os.makedirs(self.certdir)
        self.cert = os.path.join(self.certdir, "cert.pem")
        self.key = os.path.join(self.certdir, "key.pem")
        shutil.copyfile(os.path.join(CERTS, "mx-ecdsa.crt"), self.cert)
        shutil.copyfile(os.path.join(CERTS, "mx-ecdsa.key"), self.key)
        self.old_fp = file_fingerprint(os.path.join(CERTS, "mx-ecdsa.crt"))
        self.new_fp = file_fingerprint(os.path.join(CERTS, "other.crt"))
        self.assertNotEqual(self.old_fp, self.new_fp)

    def watched_proxy(self, watch="yes", cert=None, key=None):
        extra = ("\n[tls]\nwatch = %s\nwatch_delay = %gs\n"
                 "\n[certificate mx]\ncert = %s\nkey = %s\ndefault = yes\n"
                 % (watch, WATCH_DELAY, cert or self.cert, key or self.key))
        p = self.start(self.make_proxy(extra=extra, listeners=[
            {"name": "smtp", "kind": "smtp", "tls": "starttls"}]))
        p.wait_log("event=started")
        self.assertEqual(served_fingerprint(p.port()), self.old_fp)
        return p

    def install_new_certificate(self, cert=None, key=None):
        replace_file(key or self.key, os.path.join(CERTS, "other.key"))
        replace_file(cert or self.cert, os.path.join(CERTS, "other.crt"))

    def wait_served(self, p, fp):
        return poll(lambda: served_fingerprint(p.port()) == fp, "the certificate %s" % fp,
                    interval=0.2)

    def test_certificate_renamed_over_the_old_one_is_served_without_sighup(self):
        p = self.watched_proxy()
        self.install_new_certificate()
        self.wait_served(p, self.new_fp)
        log = p.log()
        m = re.search(r'event=watch_reload files="([^"]*)"', log)
        self.assertIsNotNone(m, log)
        self.assertEqual(sorted(m.group(1).split()), sorted([self.cert, self.key]))
        self.assertIn("event=reload result=ok", log[m.end():])

    def test_a_burst_of_five_changes_is_coalesced_into_fewer_reloads(self):
        p = self.watched_proxy()
        for i in range(5):
            stem = "other" if i % 2 == 0 else "mx-ecdsa"
            replace_file(self.cert, os.path.join(CERTS, stem + ".crt"))
            replace_file(self.key, os.path.join(CERTS, stem + ".key"))
        # Ten renames, each restarting the quiet timer: the reloads that
        # follow are fewer than the changes, each one complete, and the
        # last files are served in the end.
        def settled():
            log = p.log()
            done = log.count("event=reload result=")
            return (served_fingerprint(p.port()) == self.new_fp and done >= 1 and
                    done == log.count("event=watch_reload") and log)
        log = poll(settled, "the burst's reloads, all finished", interval=0.2)
        self.assertLess(log.count("event=watch_reload"), 5, log)
        self.assertNotIn("event=reload result=failed", log)

    def test_half_written_broken_key_keeps_the_old_certificate_until_fixed(self):
        p = self.watched_proxy()
        good = read(os.path.join(CERTS, "other.key")).encode()
        replace_file(self.cert, os.path.join(CERTS, "other.crt"))
        # The key written in place and cut in the middle: the write is
        # closed, the watcher sees it, the reload fails.
        with open(self.key, "wb") as f:
            f.write(good[:len(good) // 2])
        log = poll(lambda: "event=reload result=failed" in p.log() and p.log(),
                   "the failed reload")
        self.assertIn("event=watch_reload", log)
        self.assertNotIn("event=reload result=ok", log)
        self.assertEqual(served_fingerprint(p.port()), self.old_fp)
        # The rest of the key arrives: the next event retries.
        with open(self.key, "wb") as f:
            f.write(good)
        self.wait_served(p, self.new_fp)
        self.assertEqual(p.log().count("event=watch_reload"), 2, p.log())

    def test_certbot_style_symlink_swap_is_followed(self):
        archive = os.path.join(self.dir, "archive")
        live = os.path.join(self.dir, "live")
        os.makedirs(archive)
        os.makedirs(live)
        for name, src in (("cert1.pem", "mx-ecdsa.crt"), ("key1.pem", "mx-ecdsa.key"),
                          ("cert2.pem", "other.crt"), ("key2.pem", "other.key")):
            shutil.copyfile(os.path.join(CERTS, src), os.path.join(archive, name))
        cert, key = os.path.join(live, "cert.pem"), os.path.join(live, "key.pem")
        os.symlink("../archive/cert1.pem", cert)
        os.symlink("../archive/key1.pem", key)
        p = self.watched_proxy(cert=cert, key=key)
        self.assertIn("directories=2", p.log())
        for link, target in ((key, "../archive/key2.pem"), (cert, "../archive/cert2.pem")):
            os.symlink(target, link + ".new")
            os.rename(link + ".new", link)
        self.wait_served(p, self.new_fp)
        # The archive file the link points to now is watched too: changed
        # in place, it is reloaded.
        replace_file(os.path.join(archive, "cert2.pem"), os.path.join(CERTS, "mx-ecdsa.crt"))
        replace_file(os.path.join(archive, "key2.pem"), os.path.join(CERTS, "mx-ecdsa.key"))
        self.wait_served(p, self.old_fp)

    def test_watch_turned_on_by_a_reload_arms_the_watches(self):
        p = self.watched_proxy(watch="no")
        self.assertNotIn("event=watch_armed", p.log())
        p.extra = p.extra.replace("watch = no", "watch = yes")
        rewrite_config(p)
        p.signal(signal.SIGHUP)
        p.wait_log("event=watch_armed")
        p.wait_log("event=reload result=ok")
        self.install_new_certificate()
        self.wait_served(p, self.new_fp)
        self.assertIn("event=watch_reload", p.log())


if __name__ == "__main__":
    unittest.main()

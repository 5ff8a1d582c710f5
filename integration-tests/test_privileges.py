"""Privileges: started as root with [proxy] user, the proxy binds and
reads its keys as root, then runs as the user under a privileged parent
that reads root-only key files for reloads (ARCHITECTURE.md §3.1). It
refuses to go on as root without user unless allow_root = yes, and a
non-root user on high ports needs none of this."""
import os
import pwd
import shutil
import signal
import smtplib
import ssl
import subprocess
import tempfile
import time
import unittest

from peers import SmtpSink
from proxyproc import PROXY_BIN, ROOT, Proxy

CERTS = os.path.join(ROOT, "certs", "test")
USER = "nobody"  # in every Debian root, uid 65534


def fingerprint(port, sni="mx.example.test"):
    """SHA-256 of the DER certificate the proxy serves on an implicit-TLS
    port."""
    import hashlib
    import socket
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    import hashlib
    return hashlib.sha256(out).hexdigest()


def status_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line for %d" % pid)


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(x) for x in out.split()]


def root_env():
    env = dict(os.environ)
    env.pop("SMTP_TLS_PROXY__PROXY__ALLOW_ROOT", None)
    return env


@unittest.skipUnless(os.geteuid() == 0, "the privilege drop needs root (CI runs as root)")
class PrivilegeSeparationTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-priv-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o700)  # nothing here is the user's to read
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)
        self.keys = os.path.join(self.dir, "keys")
        os.makedirs(self.keys, mode=0o700)
        self.install("mx-ecdsa")

    def install(self, stem):
        """Copies a certificate and its key as certbot leaves them: the key
        root-only (0600), in a root-only directory, replaced by rename."""
        for ext, mode in ((".crt", 0o644), (".key", 0o600)):
            tmp = os.path.join(self.keys, "new" + ext)
            shutil.copyfile(os.path.join(CERTS, stem + ext), tmp)
            os.chmod(tmp, mode)
            os.rename(tmp, os.path.join(self.keys, "live" + ext))

    def make_proxy(self, proxy_keys=None):
        pdir = os.path.join(self.dir, "proxy")
        os.makedirs(pdir, exist_ok=True)
        keys = {"user": USER}
        keys.update(proxy_keys or {})
        p = Proxy(pdir, "%s:%d" % self.sink.address,
                  listeners=[{"name": "smtps", "kind": "submissions"}], proxy=keys,
                  extra="\n[certificate live]\ncert = %s\nkey = %s\n" % (
                      os.path.join(self.keys, "live.crt"), os.path.join(self.keys, "live.key")))
        return p

    def start(self, p):
        # The override the suite sets for root must not hide what is tested.
        saved = os.environ.pop("SMTP_TLS_PROXY__PROXY__ALLOW_ROOT", None)
        try:
            p.start()
        finally:
            if saved is not None:
                os.environ["SMTP_TLS_PROXY__PROXY__ALLOW_ROOT"] = saved
        self.addCleanup(p.stop)
        return p

    def proxy_child(self, p):
        for _ in range(100):
            kids = children(p.proc.pid)
            if kids:
                return kids[0]
            time.sleep(0.05)
        raise AssertionError("no proxy child:\n" + p.log())

    def test_root_only_key_replaced_and_sighup_is_served_by_the_unprivileged_proxy(self):
        p = self.start(self.make_proxy())
        child = self.proxy_child(p)
        nobody = pwd.getpwnam(USER).pw_uid
        self.assertEqual(status_uid(child), [nobody] * 4)
        self.assertEqual(status_uid(p.proc.pid)[0], 0)
        self.assertEqual(fingerprint(p.port("smtps")),
                         file_fingerprint(os.path.join(CERTS, "mx-ecdsa.crt")))
        # The unprivileged proxy cannot read the key itself.
        r = subprocess.run(["cat", os.path.join(self.keys, "live.key")],
                           preexec_fn=lambda: os.setuid(nobody), capture_output=True)
        self.assertNotEqual(r.returncode, 0)
        self.install("mx-rsa")
        p.signal(signal.SIGHUP)
        p.wait_log("generation=2")
        self.assertIn("event=reload result=ok", p.log())
        self.assertEqual(fingerprint(p.port("smtps")),
                         file_fingerprint(os.path.join(CERTS, "mx-rsa.crt")))
        # Still the same unprivileged process, serving mail.
        self.assertEqual(self.proxy_child(p), child)
        s = smtplib.SMTP_SSL("127.0.0.1", p.port("smtps"), timeout=10,
                             context=ssl._create_unverified_context())
        s.ehlo("client.src.test")
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: t\r\n\r\nbody\r\n")
        s.quit()
        for _ in range(200):  # bounded: the sink writes the file when the dot is acked
            if self.sink.messages():
                break
            time.sleep(0.05)
        self.assertEqual(len(self.sink.messages()), 1)

    def test_watch_in_a_root_only_directory_reloads_the_unprivileged_proxy(self):
        p = self.make_proxy()
        p.extra = "\n[tls]\nwatch = yes\nwatch_delay = 200ms\n" + p.extra
        self.start(p)
        self.assertEqual(fingerprint(p.port("smtps")),
                         file_fingerprint(os.path.join(CERTS, "mx-ecdsa.crt")))
        self.install("mx-rsa")  # no signal: the parent sees the renames
        p.wait_log("generation=2")
        self.assertIn("event=watch_reload", p.log())
        self.assertEqual(fingerprint(p.port("smtps")),
                         file_fingerprint(os.path.join(CERTS, "mx-rsa.crt")))

    def test_the_parent_reads_no_file_the_user_could_redirect(self):
        # An OCSP file in a directory the proxy's user owns: a compromised
        # proxy could replace it with a link to any file. The parent
        # refuses it at reload and sends no byte of it.
        nobody = pwd.getpwnam(USER)
        users = os.path.join(self.dir, "users")
        os.makedirs(users)
        os.chown(users, nobody.pw_uid, nobody.pw_gid)
        secret = os.path.join(self.keys, "secret.txt")
        with open(secret, "w") as f:
            f.write("root-only-secret-0123456789\n")
        os.chmod(secret, 0o600)
        os.symlink(secret, os.path.join(users, "ocsp.der"))
        p = self.make_proxy()
        p.extra += "ocsp = %s\n" % os.path.join(users, "ocsp.der")
        self.start(p)
        before = fingerprint(p.port("smtps"))
        p.signal(signal.SIGHUP)
        p.wait_log("privsep_files_sent")
        text = p.wait_log("generation=2")
        self.assertIn("the privileged parent reads no file that the proxy's user could redirect",
                      text)
        self.assertNotIn("root-only-secret", text)
        self.assertEqual(fingerprint(p.port("smtps")), before)

    def test_the_unprivileged_proxy_cannot_regain_privileges(self):
        p = self.start(self.make_proxy())
        child = self.proxy_child(p)
        with open("/proc/%d/status" % child) as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        self.assertEqual(status["NoNewPrivs"].strip(), "1")
        self.assertEqual(int(status["CapEff"], 16), 0)
        self.assertEqual(int(status["CapPrm"], 16), 0)
        nobody = pwd.getpwnam(USER)
        self.assertNotIn("0", status["Groups"].split())
        self.assertEqual(status["Gid"].split(), [str(nobody.pw_gid)] * 4)

    def test_reload_with_a_broken_root_only_key_keeps_the_served_certificate(self):
        p = self.start(self.make_proxy())
        before = fingerprint(p.port("smtps"))
        with open(os.path.join(self.keys, "live.key"), "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n")
        p.signal(signal.SIGHUP)
        p.wait_log("event=reload result=failed")
        self.assertEqual(fingerprint(p.port("smtps")), before)

    def test_root_without_user_refuses_to_run(self):
        conf = os.path.join(self.dir, "root.conf")
        p = self.make_proxy()
        text = p.config_text().replace("user = %s\n" % USER, "")
        with open(conf, "w") as f:
            f.write(text)
        r = subprocess.run([PROXY_BIN, "-c", conf], capture_output=True, text=True,
                           timeout=30, env=root_env())
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("refusing to run as root", r.stderr)
        self.assertIn("[proxy] user", r.stderr)

    def test_root_with_allow_root_runs_as_root_and_says_so(self):
        p = self.make_proxy({"allow_root": "yes"})
        del p.proxy_keys["user"]
        self.start(p)
        self.assertEqual(status_uid(p.proc.pid)[0], 0)
        self.assertEqual(children(p.proc.pid), [])
        self.assertIn("event=running_as_root", p.log())

    def test_unknown_user_is_a_clear_error(self):
        conf = os.path.join(self.dir, "bad.conf")
        p = self.make_proxy({"user": "no-such-user-stp"})
        with open(conf, "w") as f:
            f.write(p.config_text())
        r = subprocess.run([PROXY_BIN, "-c", conf], capture_output=True, text=True,
                           timeout=30, env=root_env())
        self.assertEqual(r.returncode, 1)
        self.assertIn("user no-such-user-stp: no such user", r.stderr)

    def test_sigterm_to_the_parent_stops_both_and_exits_zero(self):
        p = self.start(self.make_proxy())
        child = self.proxy_child(p)
        p.proc.send_signal(signal.SIGTERM)
        self.assertEqual(p.proc.wait(timeout=20), 0, p.log())
        self.assertFalse(os.path.exists("/proc/%d" % child) and
                         "zombie" not in open("/proc/%d/status" % child).read().lower())
        self.assertIn("event=stopped", p.log())

    def test_the_parent_exits_with_the_status_of_a_killed_proxy(self):
        p = self.start(self.make_proxy())
        child = self.proxy_child(p)
        os.kill(child, signal.SIGKILL)
        self.assertEqual(p.proc.wait(timeout=20), 128 + signal.SIGKILL)
        p.stop(check=False)  # the non-zero status is the point here


class UnprivilegedUserTest(unittest.TestCase):
    """A non-root user on high ports: no user key, no parent."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-unpriv-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to become another user")
    def test_a_non_root_user_on_high_ports_runs_without_privilege_separation(self):
        nobody = pwd.getpwnam(USER)
        os.chmod(self.dir, 0o755)
        certs = os.path.join(self.dir, "certs")
        os.makedirs(certs)
        for ext in (".crt", ".key"):
            shutil.copyfile(os.path.join(CERTS, "mx-ecdsa" + ext), os.path.join(certs, "c" + ext))
            os.chown(os.path.join(certs, "c" + ext), nobody.pw_uid, nobody.pw_gid)
        os.chmod(os.path.join(certs, "c.key"), 0o600)
        # The checkout may sit where the user cannot reach it (/root): run
        # a copy of the binary from a directory it can.
        binary = os.path.join(self.dir, "smtp-tls-proxy")
        shutil.copy(PROXY_BIN, binary)
        os.chmod(binary, 0o755)
        p = Proxy(self.dir, "%s:%d" % self.sink.address,
                  listeners=[{"name": "smtps", "kind": "submissions"}],
                  extra="\n[certificate c]\ncert = %s/c.crt\nkey = %s/c.key\n" % (certs, certs))
        with open(p.conf_path, "w") as f:
            f.write(p.config_text())
        log = open(p.log_path, "wb")
        env = root_env()

        def become():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        proc = subprocess.Popen([binary, "-c", p.conf_path], stdout=log,
                                stderr=subprocess.STDOUT, env=env, preexec_fn=become)
        try:
            from peers import wait_port
            wait_port("127.0.0.1", p.port("smtps"), timeout=10)
            self.assertEqual(status_uid(proc.pid)[0], nobody.pw_uid)
            self.assertEqual(children(proc.pid), [])
            self.assertEqual(fingerprint(p.port("smtps")),
                             file_fingerprint(os.path.join(CERTS, "mx-ecdsa.crt")))
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=20), 0)
            log.close()
        self.assertNotIn("running_as_root", open(p.log_path).read())


if __name__ == "__main__":
    unittest.main()

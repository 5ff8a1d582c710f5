"""The TLS parts of `smtp-tls-proxy -t` (certificates, keys, ciphers,
require_tls), and a forced require_tls on a kind = smtp listener.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from proxyproc import PROXY_BIN
from tlsharness import STANDARD_CERTIFICATES, TOOL_TIMEOUT, TlsTest, cert


class TlsConfigCheckTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-tlsconf-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def check(self, listener_extra="", certificates=None, tls=""):
        """Writes a config, runs -t on it; returns (exit code, output,
        path, {marker: line number})."""
        if certificates is None:
            certificates = STANDARD_CERTIFICATES
        text = ("[proxy]\nhostname = mx.example.test\n\n[backend]\naddress = 127.0.0.1:2525\n\n"
                "[listener smtp]\naddress = 127.0.0.1:2526\nkind = smtp\ntls = starttls\n"
                + listener_extra + "\n[listener submission]\naddress = 127.0.0.1:2527\n"
                "kind = submission\n" + certificates + tls)
        path = os.path.join(self.dir, "proxy.conf")
        with open(path, "w") as f:
            f.write(text)
        lines = {}
        for n, line in enumerate(text.split("\n"), 1):
            lines.setdefault(line.strip(), n)
        r = subprocess.run([PROXY_BIN, "-t", "-c", path], capture_output=True,
                           timeout=TOOL_TIMEOUT, cwd=self.dir)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace"), path, lines

    def assert_refused_at(self, code, out, path, line_numbers, *words):
        self.assertNotEqual(code, 0, out)
        m = re.search(re.escape(path) + r":(\d+): (.*)", out)
        self.assertIsNotNone(m, out)
        self.assertIn(int(m.group(1)), line_numbers, out)
        for w in words:
            self.assertIn(w, m.group(2), out)

    def test_standard_tls_config_is_accepted(self):
        code, out, _, _ = self.check(tls="\n[tls]\nhandshake_timeout = 30s\ngroups = X25519:P-256\n")
        self.assertEqual(code, 0, out)

    def test_unreadable_certificate_file_is_refused_with_file_and_line(self):
        missing = os.path.join(self.dir, "missing.crt")
        certs = "\n[certificate mx]\ncert = %s\nkey = %s\n" % (missing, cert("mx-ecdsa.key"))
        code, out, path, lines = self.check(certificates=certs)
        self.assert_refused_at(code, out, path,
                               (lines["[certificate mx]"], lines["cert = %s" % missing]),
                               missing)

    def test_key_not_matching_certificate_is_refused_with_file_and_line(self):
        certs = "\n[certificate mx]\ncert = %s\nkey = %s\n" % (cert("mx-ecdsa.crt"),
                                                             cert("other.key"))
        code, out, path, lines = self.check(certificates=certs)
        self.assert_refused_at(code, out, path,
                               (lines["[certificate mx]"], lines["key = %s" % cert("other.key")]),
                               "does not match")

    def test_unknown_cipher_is_refused_with_file_and_line(self):
        code, out, path, lines = self.check("ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-CIPHER\n")
        self.assert_refused_at(code, out, path,
                               (lines["[listener smtp]"],
                                lines["ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-CIPHER"]),
                               "cipher")

    def test_require_tls_on_kind_smtp_is_refused_unless_forced(self):
        code, out, path, lines = self.check("require_tls = yes\n")
        self.assert_refused_at(code, out, path,
                               (lines["[listener smtp]"], lines["require_tls = yes"]),
                               "require_tls", "force_require_tls")
        code, out, _, _ = self.check("require_tls = yes\nforce_require_tls = yes\n")
        self.assertEqual(code, 0, out)

    def test_expired_certificate_loads_with_a_warning(self):
        certs = STANDARD_CERTIFICATES + "\n[certificate expired]\ncert = %s\nkey = %s\n" % (
            cert("expired.crt"), cert("expired.key"))
        code, out, _, _ = self.check(certificates=certs)
        self.assertEqual(code, 0, out)
        warning = [l for l in out.splitlines() if "expired" in l and "warning" in l]
        self.assertTrue(warning, out)
        self.assertIn(cert("expired.crt"), warning[0])


class RequireTlsForcedTest(TlsTest):
    listeners = ({"name": "smtp", "kind": "smtp", "tls": "starttls", "require_tls": "yes",
                  "force_require_tls": "yes"},)

    def test_forced_require_tls_on_smtp_listener_gets_530_before_tls(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\nMAIL FROM:<a@src.test>\r\n")
        self.expect(c, b"250")
        self.assertEqual(c.read_reply(), b"530 5.7.0 Must issue a STARTTLS command first\r\n")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        self.send_message(c)
        self.only_message()


if __name__ == "__main__":
    unittest.main()

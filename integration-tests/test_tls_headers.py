"""The TLS facts in the injected headers, with real clients: smtplib,
swaks, openssl s_client and posttls-finger.
"""
import os
import smtplib
import subprocess
import unittest

from mailcheck import header_values, squeeze, status_pairs
from tlsharness import (CA, STATUS, TOOL_TIMEOUT, SniSMTP, SniSMTP_SSL, TlsTest,
                        proxy_received)


class TlsHeadersTest(TlsTest):

    def test_smtp_listener_starttls_with_smtplib_carries_tls_facts(self):
        s = SniSMTP("127.0.0.1", self.port("smtp"), timeout=10, sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        s.starttls(context=self.ctx())
        s.ehlo("client.src.test")
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: smtplib\r\n\r\nhi\r\n")
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        s.quit()
        msg = self.only_message()
        pairs = self.assert_tls_headers(msg["data_crlf"], "smtp", "starttls",
                                        sni="mx.example.test", version=version)
        if version == "TLSv1.3":
            self.assertEqual(pairs["cipher"], cipher)
        self.assertIn(pairs["group"], ("X25519", "P-256", "P-384", "X25519MLKEM768",
                                       "X25519Kyber768Draft00"))
        self.assertIn("from client.src.test (unknown [127.0.0.1])",
                      proxy_received(msg["data_crlf"])[0])

    def test_submissions_with_smtplib_smtp_ssl_carries_tls_facts(self):
        s = SniSMTP_SSL("127.0.0.1", self.port("submissions"), timeout=10,
                        context=self.ctx(), sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        self.assertNotIn("starttls", s.esmtp_features)
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: smtp_ssl\r\n\r\nhi\r\n")
        version = s.sock.version()
        s.quit()
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test", version=version)

    def test_client_without_sni_gets_no_sni_in_headers(self):
        c, _ = self.implicit(sni=None)
        self.send_message(c)
        data = self.only_message()["data_crlf"]
        self.assert_tls_headers(data, "submissions", "implicit", sni=None)
        self.assertNotIn(" sni ", proxy_received(data)[0])

    def test_swaks_starttls_on_each_starttls_listener(self):
        for i, listener in enumerate(("smtp", "submission")):
            with self.subTest(listener=listener):
                out = subprocess.run(
                    ["swaks", "--server", "127.0.0.1:%d" % self.port(listener), "--tls",
                     "--tls-sni", "mx.example.test", "--tls-verify", "--tls-ca-path", CA,
                     "--from", "a@src.test", "--to", "b%d@dst.test" % i,
                     "--helo", "swaks.src.test", "--body", "swaks"],
                    capture_output=True, timeout=TOOL_TIMEOUT)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn(b"220 2.0.0 Ready to start TLS", out.stdout)
                msgs = self.sink.wait_messages(i + 1)
                msg = [m for m in msgs if m["recipients"] == ["b%d@dst.test" % i]][0]
                self.assert_tls_headers(msg["data_crlf"], listener, "starttls",
                                        sni="mx.example.test")

    def test_swaks_tls_on_connect_on_submissions(self):
        out = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % self.port("submissions"),
             "--tls-on-connect", "--tls-sni", "mail.other.test", "--tls-verify",
             "--tls-ca-path", CA, "--from", "a@src.test", "--to", "b@dst.test",
             "--helo", "swaks.src.test", "--body", "swaks"],
            capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(b'peer DN="/CN=mail.other.test"', out.stdout)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mail.other.test")

    def test_openssl_s_client_delivers_over_starttls(self):
        script = (b"EHLO sclient.src.test\nMAIL FROM:<a@src.test>\nRCPT TO:<b@dst.test>\n"
                  b"DATA\nSubject: s_client\n\nhello\n.\nQUIT\n")
        code, out = self.s_client(self.port("smtp"), "-servername", "mx.example.test",
                                  "-CAfile", CA, "-verify_return_error", "-crlf", "-quiet",
                                  "-nocommands", stdin=script)
        self.assertEqual(code, 0, out)
        self.assertIn("221", out)
        self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                sni="mx.example.test")

    def test_plaintext_client_on_smtp_listener_delivers_with_tls_none(self):
        s = smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10)
        self.addCleanup(s.close)
        s.ehlo("plain.src.test")
        self.assertIn("starttls", s.esmtp_features)  # offered, never required
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: plaintext\r\n\r\nhi\r\n")
        s.quit()
        data = self.only_message()["data_crlf"]
        rec = proxy_received(data)
        self.assertEqual(len(rec), 1)
        self.assertIn("with ESMTP id", rec[0])
        self.assertNotIn(" tls ", rec[0])
        pairs = status_pairs(squeeze(header_values(data, STATUS)[0]))
        self.assertEqual(pairs["tls"], "none")
        self.assertEqual(pairs["mode"], "none")
        self.assertEqual(pairs["listener"], "smtp")
        for key in ("cipher", "group", "sni"):
            self.assertNotIn(key, pairs)

    def test_posttls_finger_negotiates_starttls_and_verifies_the_certificate(self):
        conf = os.path.join(self.dir, "postfix-conf")
        os.makedirs(conf)
        open(os.path.join(conf, "main.cf"), "w").close()
        env = dict(os.environ, MAIL_CONFIG=conf)
        out = subprocess.run(
            ["posttls-finger", "-l", "secure", "-F", CA, "-s", "mx.example.test",
             "[127.0.0.1]:%d" % self.port("smtp"), "mx.example.test"],
            capture_output=True, timeout=TOOL_TIMEOUT, env=env)
        text = (out.stdout + out.stderr).decode("utf-8", "replace")
        self.assertIn("> STARTTLS", text)
        self.assertIn("< 220 2.0.0 Ready to start TLS", text)
        self.assertIn("matched peername: mx.example.test", text)
        self.assertRegex(text, r"Verified TLS connection established to 127\.0\.0\.1\S*: "
                               r"TLSv1\.[23] with cipher")
        # The EHLO under TLS offers no STARTTLS but AUTH.
        after = text.split("Verified TLS connection", 1)[1]
        self.assertNotIn("STARTTLS", after)
        self.assertIn("AUTH PLAIN LOGIN", after)
        self.proxy.wait_log("sni=mx.example.test")


if __name__ == "__main__":
    unittest.main()

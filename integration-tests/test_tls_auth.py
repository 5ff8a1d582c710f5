"""Requiring TLS, AUTH (RFC 6409, RFC 4954): submission refuses mail and
AUTH before STARTTLS, AUTH is offered only under TLS and relayed to the
backend, and a plaintext login never carries into TLS.
"""
import subprocess
import unittest

from tlsharness import CA, TOOL_TIMEOUT, SniSMTP, TlsTest, proxy_received


class SubmissionTest(TlsTest):

    def test_submission_mail_before_tls_gets_530(self):
        c = self.conv("submission")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.assertEqual(c.read_reply(), b"530 5.7.0 Must issue a STARTTLS command first\r\n")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"530 5.7.0")
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        self.assertNotIn("MAIL FROM", self.sink.log())

    def test_submission_ehlo_hides_auth_before_tls_and_shows_it_after(self):
        c, before, after = self.starttls("submission")
        self.assertNotIn(b"AUTH", before)
        self.assertIn(b"STARTTLS", before)
        self.assertIn(b"AUTH PLAIN LOGIN", after)
        self.assertNotIn(b"STARTTLS", after)

    def test_auth_before_tls_on_smtp_listener_gets_538_and_never_reaches_backend(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        ehlo = self.expect(c, b"250")
        self.assertNotIn(b"AUTH", ehlo)
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        self.assertTrue(c.read_reply().startswith(b"538 5.7.11"))
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        self.assertNotIn("AUTH", self.sink.log())
        self.assertNotIn("AHVzZXIAc2VjcmV0", self.proxy.log())

    def test_auth_before_tls_on_submission_is_refused_and_never_reaches_backend(self):
        c = self.conv("submission")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        reply = c.read_reply()
        self.assertRegex(reply, rb"^5(30 5\.7\.0|38 5\.7\.11) ")
        self.assertNotIn("AUTH", self.sink.log())

    def test_submission_message_after_starttls_with_smtplib_carries_tls_facts(self):
        s = SniSMTP("127.0.0.1", self.port("submission"), timeout=10, sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        self.assertIn("starttls", s.esmtp_features)
        self.assertNotIn("auth", s.esmtp_features)
        s.starttls(context=self.ctx())
        s.ehlo("client.src.test")
        self.assertNotIn("starttls", s.esmtp_features)
        self.assertIn("auth", s.esmtp_features)
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: submission\r\n\r\nhi\r\n")
        version = s.sock.version()
        s.quit()
        self.assert_tls_headers(self.only_message()["data_crlf"], "submission", "starttls",
                                sni="mx.example.test", version=version)


class AuthTest(TlsTest):
    backend = "mini"

    def test_auth_plain_after_tls_gets_235_and_received_says_esmtpsa(self):
        s = SniSMTP("127.0.0.1", self.port("submission"), timeout=10, sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        s.starttls(context=self.ctx())
        s.ehlo("client.src.test")
        s.user, s.password = "user", "secret"
        code, _ = s.auth("PLAIN", s.auth_plain)
        self.assertEqual(code, 235)
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: authenticated\r\n\r\nhi\r\n")
        s.quit()
        self.assertEqual(len(self.mta.messages), 1)
        data = self.mta.messages[0]
        self.assert_tls_headers(data, "submission", "starttls", sni="mx.example.test",
                                protocol="ESMTPSA")
        self.assertIn(b"AUTH PLAIN AHVzZXIAc2VjcmV0", self.mta.commands())

    def test_refused_second_auth_keeps_the_session_authenticated(self):
        # RFC 4954 4: after a successful AUTH, further AUTH commands get
        # 503; the session stays authenticated, and its mail is ESMTPSA
        # (RFC 3848).
        c, _, _ = self.starttls("submission")
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        self.expect(c, b"235")
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        self.expect(c, b"503")
        self.send_message(c)
        self.assertEqual(len(self.mta.messages), 1)
        self.assert_tls_headers(self.mta.messages[0], "submission", "starttls",
                                sni="mx.example.test", protocol="ESMTPSA")

    def test_auth_login_continuations_are_relayed_over_implicit_tls(self):
        out = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % self.port("submissions"),
             "--tls-on-connect", "--tls-sni", "mx.example.test", "--tls-verify",
             "--tls-ca-path", CA, "--auth", "LOGIN", "--auth-user", "user",
             "--auth-password", "secret", "--from", "a@src.test", "--to", "b@dst.test",
             "--helo", "swaks.src.test", "--body", "login"],
            capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(b"235 2.7.0", out.stdout)
        cmds = self.mta.commands()
        self.assertIn(b"AUTH LOGIN", cmds)
        self.assertIn(b"dXNlcg==", cmds)      # "user", as SASL data
        self.assertIn(b"c2VjcmV0", cmds)      # "secret"
        self.assert_tls_headers(self.mta.messages[0], "submissions", "implicit",
                                sni="mx.example.test", protocol="ESMTPSA")


class AuthBeforeTlsAllowedTest(TlsTest):
    """auth_requires_tls = no lets AUTH through before TLS; STARTTLS must
    still reset the session (RFC 3207 4.2), AUTH included."""
    backend = "mini"
    listeners = ({"name": "smtp", "kind": "smtp", "tls": "starttls",
                  "auth_requires_tls": "no"},)

    def test_starttls_after_auth_is_refused_so_a_plaintext_login_never_carries_into_tls(self):
        """RFC 3207 4.2 wants what was learned before TLS forgotten, but a
        backend keeps a successful AUTH across RSET (Postfix does), so the
        proxy refuses STARTTLS after AUTH instead of letting a plaintext
        login continue under TLS."""
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.assertIn(b"AUTH PLAIN", self.expect(c, b"250"))
        c.send(b"AUTH PLAIN AGF0dGFja2VyAHB3\r\n")  # "attacker" before TLS
        self.expect(c, b"235")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"503 5.5.1")
        # Still a working plaintext session; the message says so.
        self.send_message(c, rcpt=b"first@dst.test")
        self.assertIn("with ESMTPA id", proxy_received(self.mta.messages[0])[0])


if __name__ == "__main__":
    unittest.main()

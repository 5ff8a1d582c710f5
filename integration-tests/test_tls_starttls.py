"""STARTTLS on behalf of the backend (RFC 3207): offered before TLS and
never after, refused where it does not belong, plaintext pipelined behind
it never run (CVE-2011-0411), and what a legacy backend sees and offers
around it.
"""
import ssl
import time
import unittest

from tlsharness import STANDARD_LISTENERS, TlsTest


class StarttlsTest(TlsTest):
    tls_section = "\n[tls]\nhandshake_timeout = 1s\n"

    def test_starttls_offered_before_tls_never_after_and_answered_220_ready(self):
        for listener in ("smtp", "submission"):
            with self.subTest(listener=listener):
                c, before, after = self.starttls(listener)
                self.assertRegex(before, rb"(?m)^250[- ]STARTTLS\r$")
                self.assertNotIn(b"STARTTLS", after)  # RFC 3207 4.2
                c.send(b"QUIT\r\n")
                self.expect(c, b"221")

    def test_starttls_with_argument_gets_501_and_plaintext_session_continues(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS now\r\n")
        self.expect(c, b"501 ")
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        # STARTTLS without the argument still works afterwards.
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")

    def test_second_starttls_under_tls_gets_554_tls_already_active(self):
        c, _, _ = self.starttls("smtp")
        c.send(b"STARTTLS\r\n")
        self.assertEqual(c.read_reply(), b"554 5.5.1 Error: TLS already active\r\n")
        # The TLS session goes on.
        self.send_message(c)
        self.assertIn(b"mode=starttls", self.only_message()["data"])

    def test_starttls_never_reaches_the_backend(self):
        c, _, _ = self.starttls("smtp")
        self.send_message(c)
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        self.only_message()
        log = self.sink.log()
        self.assertIn("EHLO client.src.test", log)
        self.assertNotIn("STARTTLS", log.upper())

    def test_mail_before_starttls_then_rcpt_after_new_ehlo_gets_503(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"MAIL FROM:<before-tls@src.test>\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"503")  # RFC 3207 4.2: the envelope is forgotten
        c.send(b"DATA\r\n")
        self.expect(c, b"503")
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        time.sleep(0.2)
        self.assertEqual(self.sink.parsed_messages(), [])

    def test_mail_after_starttls_without_new_ehlo_gets_503(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.expect(c, b"503")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"503")
        # After EHLO the same transaction goes through.
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        self.send_message(c)
        self.only_message()

    def test_failed_starttls_handshake_closes_without_plaintext_fallback(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        # A client that carries on in plaintext instead of a ClientHello.
        c.send(b"EHLO client.src.test\r\nMAIL FROM:<a@src.test>\r\n")
        rest = c.read_until_eof()
        # At most a TLS alert record (content type 21), never an SMTP reply.
        self.assertNotIn(b"250", rest)
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        line = self.session_line(c, "event=tls_failed")
        self.assertRegex(line, r"event=tls_failed client=127\.0\.0\.1 listener=smtp "
                               r"mode=starttls reason=\S+")
        self.assertRegex(self.session_line(c, "event=end"), r"result=tls_handshake_failed")
        self.assertNotIn("MAIL FROM", self.sink.log())

    def test_starttls_client_silent_after_220_is_cut_off_by_handshake_timeout(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        # The socket's own timeout bounds the wait; the log says why it ended.
        self.assertEqual(c.read_until_eof(), b"")
        self.session_line(c, "reason=handshake_timeout")


class StarttlsOnPlaintextListenerTest(TlsTest):
    listeners = STANDARD_LISTENERS + ({"name": "plain", "kind": "smtp", "tls": "none"},)

    def test_starttls_on_tls_none_listener_gets_502_and_is_not_offered(self):
        c = self.conv("plain")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        ehlo = self.expect(c, b"250")
        self.assertNotIn(b"STARTTLS", ehlo)
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"502 ")
        self.send_message(c)
        self.assertNotIn("STARTTLS", self.sink.log().upper())


class StarttlsInjectionTest(TlsTest):
    """CVE-2011-0411: plaintext pipelined after STARTTLS must never run."""

    INJECTED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n"

    def finish_proper_transaction(self, c):
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        self.send_message(c, sender=b"good@src.test", rcpt=b"b@dst.test")
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        msg = self.only_message()
        self.assertEqual(msg["sender"], "good@src.test")
        self.assertEqual(msg["recipients"], ["b@dst.test"])
        self.assertNotIn("evil@x", self.sink.log())
        self.assertNotIn("victim@x", self.sink.log())

    def test_plaintext_pipelined_after_starttls_is_discarded_and_logged(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n" + self.INJECTED)
        self.assertEqual(c.read_reply(), b"220 2.0.0 Ready to start TLS\r\n")
        self.finish_proper_transaction(c)
        log = self.proxy.wait_log("event=starttls_injection")
        self.assertRegex(log, r"event=starttls_injection client=127\.0\.0\.1 bytes=%d\b"
                         % len(self.INJECTED))

    def test_injection_behind_pipelined_ehlo_is_discarded_too(self):
        c = self.conv("submission")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\nSTARTTLS\r\n" + self.INJECTED)
        self.expect(c, b"250")
        self.assertEqual(c.read_reply(), b"220 2.0.0 Ready to start TLS\r\n")
        self.finish_proper_transaction(c)
        self.proxy.wait_log("event=starttls_injection")

    def test_plaintext_after_starttls_in_a_second_segment_is_never_executed(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        time.sleep(0.05)
        c.send(self.INJECTED)
        self.assertEqual(c.read_reply(), b"220 2.0.0 Ready to start TLS\r\n")
        try:
            # Either the bytes were discarded before the handshake ...
            self.finish_proper_transaction(c)
        except (ssl.SSLError, OSError):
            # ... or they reached the TLS library as a broken ClientHello.
            self.session_line(c, "event=tls_failed")
            time.sleep(0.2)
            self.assertEqual(self.sink.parsed_messages(), [])
            self.assertNotIn("evil@x", self.sink.log())


class StarttlsBackendViewTest(TlsTest):
    """What a legacy MTA sees and offers around STARTTLS."""
    backend = "mini"

    def test_backend_starttls_chunking_xclient_xforward_never_shown(self):
        for listener in ("smtp", "submission"):
            with self.subTest(listener=listener):
                c, before, after = self.starttls(listener)
                for ehlo in (before, after):
                    for kw in (b"CHUNKING", b"XCLIENT", b"XFORWARD"):
                        self.assertNotIn(kw, ehlo)
                # Exactly one STARTTLS before TLS (the proxy's), none after.
                self.assertEqual(before.count(b"STARTTLS"), 1, before)
                self.assertNotIn(b"STARTTLS", after)
                self.assertNotIn(b"AUTH", before)  # RFC 4954 4
                self.assertIn(b"AUTH PLAIN LOGIN", after)
                self.assertIn(b"SIZE", after)

    def test_backend_gets_a_new_session_after_starttls_and_never_the_injected_commands(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO first.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"MAIL FROM:<before@src.test>\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO second.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"503")  # the backend forgot the envelope
        self.send_message(c)
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        cmds = self.mta.commands()
        # The first backend session ends at STARTTLS; the post-TLS EHLO
        # opens a second one that knows nothing from before (RFC 3207 4.2).
        self.assertEqual(cmds[:4], [b"EHLO first.src.test", b"MAIL FROM:<before@src.test>",
                                    b"QUIT", b"EHLO second.src.test"], cmds)
        self.assertNotIn(b"STARTTLS", cmds)
        for cmd in cmds:
            self.assertNotIn(b"evil@x", cmd)
            self.assertNotIn(b"victim@x", cmd)
        self.assertEqual(len(self.mta.messages), 1)


if __name__ == "__main__":
    unittest.main()

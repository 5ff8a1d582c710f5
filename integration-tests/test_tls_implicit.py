"""Implicit TLS on the submissions port (RFC 8314): the handshake first,
then the backend's greeting; what is not a ClientHello, or comes too
slowly, is cut off and the proxy keeps serving.
"""
import os
import socket
import ssl
import unittest

from tlsharness import TlsTest


class ImplicitTlsTest(TlsTest):
    tls_section = "\n[tls]\nhandshake_timeout = 1s\n"

    def test_implicit_tls_handshake_comes_first_then_backend_greeting(self):
        c = self.conv("submissions")
        c.sock.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            c.sock.recv(100)  # no plaintext greeting: the client speaks first
        c.sock.settimeout(10)
        self.wrap(c)
        self.assertEqual(self.expect(c, b"220 "), b"220 smtp-sink ESMTP\r\n")
        c.send(b"EHLO client.src.test\r\n")
        ehlo = self.expect(c, b"250")
        self.assertNotIn(b"STARTTLS", ehlo)
        self.assertIn(b"AUTH", ehlo)

    def test_plaintext_ehlo_on_implicit_port_closes_logs_reason_and_proxy_keeps_serving(self):
        c = self.conv("submissions")
        c.send(b"EHLO x\r\n")
        rest = c.read_until_eof()
        self.assertNotIn(b"220", rest)
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        line = self.session_line(c, "event=tls_failed")
        self.assertRegex(line, r"event=tls_failed client=127\.0\.0\.1 "
                               r"listener=submissions mode=implicit reason=\S+")
        self.assertNotIn("reason=client_closed_connection", line)
        self.good_implicit_message()

    def test_random_bytes_on_implicit_port_close_the_connection_and_proxy_keeps_serving(self):
        for n in (1, 5, 700, 20000):
            c = self.conv("submissions")
            c.send(os.urandom(n) if n > 1 else b"\x16")  # 1 byte: a truncated record
            if n == 1:
                c.sock.shutdown(socket.SHUT_WR)
            rest = c.read_until_eof()
            self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
            self.assertRegex(self.session_line(c, "event=tls_failed"), r"reason=\S+")
        self.good_implicit_message()

    def test_silent_client_on_implicit_port_is_cut_off_by_handshake_timeout(self):
        c = self.conv("submissions")
        # The socket's own timeout bounds the wait; the log says why it ended.
        self.assertEqual(c.read_until_eof(), b"")
        self.session_line(c, "reason=handshake_timeout")
        self.good_implicit_message()

    def test_slow_drip_client_hello_is_cut_off_by_handshake_timeout(self):
        # handshake_timeout bounds the whole handshake, not the pause
        # between two bytes: a client sending its ClientHello a byte at a
        # time must not hold the connection beyond it.
        ctx = self.ctx()
        bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(bio_in, bio_out, server_hostname="mx.example.test")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = bio_out.read()
        c = self.conv("submissions")
        closed = False
        for i in range(14):  # 14 x 0.3 s: well past the 1 s handshake_timeout
            try:
                c.sock.sendall(hello[i:i + 1])
                c.sock.settimeout(0.3)
                closed = c.sock.recv(100) == b""
            except socket.timeout:
                continue
            except OSError:
                closed = True
            if closed:
                break
        self.assertTrue(closed, "connection still open after the whole ClientHello was dripped")
        self.session_line(c, "reason=handshake_timeout")

    def test_backend_down_gives_421_over_tls_after_the_handshake(self):
        self.sink.stop()
        c = self.conv("submissions")
        self.wrap(c)
        self.assertTrue(c.read_reply().startswith(b"421 4.4.1 mx.example.test"))
        self.assertEqual(c.read_until_eof(), b"")

    def test_starttls_under_implicit_tls_gets_554_tls_already_active(self):
        c, _ = self.implicit()
        c.send(b"STARTTLS\r\n")
        self.assertEqual(c.read_reply(), b"554 5.5.1 Error: TLS already active\r\n")
        self.send_message(c)

    def test_resumed_tls13_session_still_carries_tls_facts(self):
        ctx = self.ctx()
        session = None
        for n in range(2):
            c = self.conv("submissions")
            c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.example.test", session=session)
            self.expect(c, b"220")
            c.send(b"EHLO client.src.test\r\n")
            self.expect(c, b"250")
            self.send_message(c, rcpt=b"resumed%d@dst.test" % n)
            c.send(b"QUIT\r\n")
            self.expect(c, b"221")
            self.assertEqual(c.sock.session_reused, n == 1)
            session = c.sock.session
            c.close()
        msgs = self.sink.wait_messages(2)
        resumed = [m for m in msgs if m["recipients"] == ["resumed1@dst.test"]][0]
        self.assert_tls_headers(resumed["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test", version="TLSv1.3")

    def good_implicit_message(self):
        c, _ = self.implicit()
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test")


if __name__ == "__main__":
    unittest.main()

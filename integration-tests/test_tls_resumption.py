"""TLS session resumption (RFC 8446 4.6.1, RFC 5077): a returning client
resumes by ticket on TLS 1.3 and 1.2, also after a reload (the ticket
keys outlive the snapshot), never on another listener, not at all with
session_tickets = no, and never after the ticket's lifetime; a resumed
session's message records its TLS like any other.
"""
import re
import signal
import ssl
import time

from tlsharness import TlsTest


class ResumptionTest(TlsTest):
    tls_section = "\n[tls]\nticket_rotation = 2s\n"

    def client_ctx(self, version):
        c = self.ctx()
        c.minimum_version = version
        c.maximum_version = version
        return c

    def first_session(self, ctx, listener="submissions"):
        """A full handshake on |listener|; returns the session the proxy
        issued (TLS 1.3 sends its tickets after the handshake: they are
        read with the greeting)."""
        if listener == "submissions":
            c, _ = self.implicit(listener, ctx=ctx)
        else:
            c, _, _ = self.starttls(listener, ctx=ctx)
        self.assertFalse(c.sock.session_reused)
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        session = c.sock.session
        self.assertIsNotNone(session)
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        return session

    def connect_with(self, session, ctx, listener="submissions"):
        c = self.conv(listener)
        if listener != "submissions":
            self.expect(c, b"220 ")
            c.send(b"EHLO client.src.test\r\n")
            self.expect(c, b"250")
            c.send(b"STARTTLS\r\n")
            self.expect(c, b"220 ")
        c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.example.test", session=session)
        if listener == "submissions":
            self.expect(c, b"220 ")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        return c

    def reload(self):
        done = self.proxy.log().count("event=reload result=")
        self.proxy.signal(signal.SIGHUP)
        for _ in range(200):
            results = re.findall(r"event=reload result=(\S+)", self.proxy.log())
            if len(results) > done:
                self.assertEqual(results[-1], "ok", self.proxy.log())
                return
            time.sleep(0.05)
        self.fail("no reload result:\n" + self.proxy.log())

    def test_tls13_returning_client_resumes_and_its_message_records_tls(self):
        ctx = self.client_ctx(ssl.TLSVersion.TLSv1_3)
        session = self.first_session(ctx)
        c = self.connect_with(session, ctx)
        self.assertTrue(c.sock.session_reused)
        self.assertIn("resumed=yes", self.session_line(c, "event=tls "))
        self.send_message(c)
        data = self.only_message()["data"]
        self.assert_tls_headers(data, "submissions", "implicit", version="TLSv1.3",
                                sni="mx.example.test")

    def test_tls12_returning_client_resumes_by_ticket(self):
        ctx = self.client_ctx(ssl.TLSVersion.TLSv1_2)
        session = self.first_session(ctx)
        self.assertTrue(session.has_ticket)
        c = self.connect_with(session, ctx)
        self.assertTrue(c.sock.session_reused)
        self.assertIn("resumed=yes", self.session_line(c, "event=tls "))

    def test_session_resumes_after_a_reload(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = self.client_ctx(version)
            session = self.first_session(ctx)
            self.reload()
            c = self.connect_with(session, ctx)
            self.assertTrue(c.sock.session_reused, version)
            c.close()

    def test_session_of_one_listener_does_not_resume_on_another(self):
        ctx = self.client_ctx(ssl.TLSVersion.TLSv1_3)
        session = self.first_session(ctx, "submissions")
        c = self.connect_with(session, ctx, "submission")
        self.assertFalse(c.sock.session_reused)
        self.assertIn("resumed=no", self.session_line(c, "event=tls "))
        # It is an ordinary full handshake: the session goes on.
        self.send_message(c)

    def test_ticket_is_not_honoured_after_its_lifetime(self):
        # ticket_rotation = 2s: a ticket lives 2 s; after 4 s its key is
        # retired too. Either way the client gets a full handshake.
        ctx = self.client_ctx(ssl.TLSVersion.TLSv1_3)
        session = self.first_session(ctx)
        time.sleep(4.5)
        c = self.connect_with(session, ctx)
        self.assertFalse(c.sock.session_reused)
        self.send_message(c)


class NoTicketsTest(TlsTest):
    tls_section = "\n[tls]\nsession_tickets = no\n"

    def test_session_tickets_off_gives_tls13_clients_full_handshakes(self):
        ctx = self.ctx()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        c, _ = self.implicit(ctx=ctx)
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        session = c.sock.session
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        self.assertFalse(session.has_ticket)
        d = self.conv("submissions")
        d.sock = ctx.wrap_socket(d.sock, server_hostname="mx.example.test", session=session)
        self.expect(d, b"220 ")
        self.assertFalse(d.sock.session_reused)

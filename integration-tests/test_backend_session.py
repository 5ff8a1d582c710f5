"""What the backend's session looks like around STARTTLS, and what the
injected Received: header says about it (issue 9): a fresh backend
session after the handshake (OpenSMTPD refuses a second EHLO in one),
the identity sent again on it, the HELO name recorded only once the
backend accepted it, and RFC 6531's UTF8SMTPS for SMTPUTF8 mail.
"""
import os
import re
import shutil
import smtplib
import ssl
import tempfile
import unittest

from fakebackend import LineReader, ScriptedBackend
from mailcheck import header_values, squeeze
from proxyproc import ROOT, Proxy, SmtpConversation

CERTS = os.path.join(ROOT, "certs", "test")
CERT = "\n[certificate mx]\ncert = %s\nkey = %s\n" % (os.path.join(CERTS, "mx-ecdsa.crt"),
                                                     os.path.join(CERTS, "mx-ecdsa.key"))


def one_ehlo_mta(record, ehlo=b"250-strict\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                 refuse_ehlo_named=None):
    """An MTA that, like OpenSMTPD, answers a second EHLO or HELO in one
    session with 503 "Already identified". Records each connection's
    lines in record["sessions"] and each message in record["messages"].
    EHLO/HELO naming |refuse_ehlo_named| gets 501."""
    record.setdefault("sessions", [])
    record.setdefault("messages", [])

    def handler(conn, received):
        lines = []
        record["sessions"].append(lines)
        r = LineReader(conn)
        identified = False
        conn.sendall(b"220 strict ESMTP\r\n")
        for _ in range(1000):
            line = r.read(4096)
            if not line:
                return
            lines.append(line.rstrip(b"\r\n"))
            verb = line.split()[0].upper() if line.split() else b""
            if verb in (b"EHLO", b"HELO"):
                if refuse_ehlo_named and refuse_ehlo_named in line:
                    conn.sendall(b"501 5.5.2 bad name\r\n")
                elif identified:
                    conn.sendall(b"503 5.5.1 Invalid command: Already identified\r\n")
                else:
                    identified = True
                    conn.sendall(ehlo if verb == b"EHLO" else b"250 strict\r\n")
            elif verb == b"PROXY":
                continue
            elif verb == b"XCLIENT":
                conn.sendall(b"220 strict ESMTP\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                body = []
                for _ in range(100000):
                    l = r.read(4096)
                    if not l or l == b".\r\n":
                        break
                    body.append(l)
                record["messages"].append(b"".join(body))
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 2.0.0 ok\r\n")
    return handler


class BackendSessionTest(unittest.TestCase):

    def start(self, handler, backend_keys=None):
        self.dir = tempfile.mkdtemp(prefix="stp-bs-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.backend = ScriptedBackend(handler).start()
        self.addCleanup(self.backend.stop)
        self.proxy = Proxy(self.dir, self.backend.address(),
                           listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"}],
                           extra=CERT, backend_keys=backend_keys)
        self.proxy.start()
        self.addCleanup(self.proxy.stop)

    def smtp_starttls(self, helo="second.src.test"):
        s = smtplib.SMTP("127.0.0.1", self.proxy.port(), timeout=10,
                         local_hostname="first.src.test")
        self.addCleanup(s.close)
        s.ehlo()
        ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
        s._host = "mx.example.test"  # the name the certificate is for
        s.starttls(context=ctx)
        s.local_hostname = helo
        code, _ = s.ehlo()
        self.assertEqual(code, 250)
        return s

    def received(self, message):
        ours = [v for v in header_values(message, "Received") if "smtp-tls-proxy" in v]
        self.assertEqual(len(ours), 1, ours)
        return squeeze(ours[0])

    def test_starttls_to_a_backend_that_refuses_a_second_ehlo_delivers(self):
        record = {}
        self.start(one_ehlo_mta(record))
        s = self.smtp_starttls()
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: strict\r\n\r\nbody\r\n")
        s.quit()
        self.assertEqual(len(record["messages"]), 1)
        # Two backend sessions, each identified once; the second one gets
        # the post-TLS EHLO.
        sessions = [l for l in record["sessions"] if l]
        self.assertEqual([l[0].lower() for l in sessions],
                         [b"ehlo first.src.test", b"ehlo second.src.test"])
        self.assertEqual(sessions[0][-1], b"QUIT")
        received = self.received(record["messages"][0])
        self.assertIn("from second.src.test", received)
        self.assertIn("with ESMTPS", received)

    def test_identity_is_sent_again_to_the_backend_session_after_starttls(self):
        record = {}
        self.start(one_ehlo_mta(record), backend_keys={"identity": "proxy-v1"})
        s = self.smtp_starttls()
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: ident\r\n\r\nbody\r\n")
        s.quit()
        # Sessions the harness opened to see the port up never say EHLO.
        first, second = [l for l in record["sessions"] if any(x.lower().startswith(b"ehlo")
                                                              for x in l)]
        for lines in (first, second):
            self.assertTrue(lines[0].startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 "), lines[0])

    def test_refused_ehlo_is_not_named_in_received(self):
        record = {}
        self.start(one_ehlo_mta(record, refuse_ehlo_named=b"bad.src.test"))
        c = SmtpConversation("127.0.0.1", self.proxy.port())
        self.addCleanup(c.close)
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"EHLO good.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"EHLO bad.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"501"))  # the session stays as it was
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        c.read_reply()
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        c.read_reply()
        c.send(b"DATA\r\n")
        self.assertTrue(c.read_reply().startswith(b"354"))
        c.send(b"Subject: helo\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        received = self.received(record["messages"][0])
        self.assertIn("from good.src.test", received)
        self.assertNotIn("bad.src.test", received)
        self.assertIn("with ESMTP ", received)

    def test_smtputf8_transaction_is_recorded_as_utf8smtps(self):
        record = {}
        ehlo = b"250-strict\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n"
        self.start(one_ehlo_mta(record, ehlo=ehlo))
        s = self.smtp_starttls()
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: utf8\r\n\r\nbody\r\n",
                   mail_options=["SMTPUTF8"])
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: ascii\r\n\r\nbody\r\n")
        s.quit()
        first, second = (self.received(m) for m in record["messages"])
        self.assertIn("with UTF8SMTPS", first)
        self.assertIn("with ESMTPS", second)

    def test_starttls_queued_behind_a_local_refusal_still_gets_its_220(self):
        # NOOP waits for the backend; the refusal and the 220 wait behind it.
        record = {}
        self.start(one_ehlo_mta(record))
        c = SmtpConversation("127.0.0.1", self.proxy.port())
        self.addCleanup(c.close)
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"EHLO pipe.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"NOOP\r\nXCLIENT ADDR=10.0.0.1\r\nSTARTTLS\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"550", b"220"])

    def test_received_id_is_an_atom(self):
        record = {}
        self.start(one_ehlo_mta(record))
        s = self.smtp_starttls()
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: id\r\n\r\nbody\r\n")
        s.quit()
        received = self.received(record["messages"][0])
        m = re.search(r" id (\S+) ", received)
        self.assertIsNotNone(m, received)
        # RFC 5321 4.4: ID = Atom; RFC 5322 atext has no '.'.
        self.assertRegex(m.group(1), r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")


if __name__ == "__main__":
    unittest.main()

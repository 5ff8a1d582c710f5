"""Attacks found in review: commands hidden from the proxy by blanks,
replies piling up for a client that never reads, and running out of
file descriptors."""
import os
import shutil
import socket
import tempfile
import time
import unittest

from fakebackend import ScriptedBackend, read_line
from peers import SmtpSink
from proxyproc import ROOT, Proxy, SmtpConversation

CERTS = os.path.join(ROOT, "certs", "test")
CERT = "\n[certificate mx]\ncert = %s\nkey = %s\n" % (os.path.join(CERTS, "mx-ecdsa.crt"),
                                                     os.path.join(CERTS, "mx-ecdsa.key"))


def recording_backend(conn, received):
    """A small MTA that records every line and offers everything."""
    conn.sendall(b"220 fake ESMTP\r\n")
    in_data = False
    for _ in range(200):
        line = read_line(conn, received)
        if not line:
            return
        if in_data:
            if line == b".\r\n":
                in_data = False
                conn.sendall(b"250 2.0.0 queued\r\n")
            continue
        verb = line.split()[0].upper() if line.split() else b""
        if verb == b"EHLO":
            conn.sendall(b"250-fake\r\n250-AUTH PLAIN\r\n250-XCLIENT ADDR NAME\r\n"
                         b"250-STARTTLS\r\n250 CHUNKING\r\n")
        elif verb == b"DATA":
            in_data = True
            conn.sendall(b"354 go\r\n")
        elif verb == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            return
        else:
            conn.sendall(b"250 2.0.0 ok\r\n")


class BlankSeparatedCommandsTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-hard-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.backend = ScriptedBackend(recording_backend).start()
        self.addCleanup(self.backend.stop)
        self.proxy = Proxy(self.dir, self.backend.address(),
                           listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"}],
                           extra=CERT)
        self.proxy.start()
        self.addCleanup(self.proxy.stop)

    def conv(self):
        c = SmtpConversation("127.0.0.1", self.proxy.port())
        self.addCleanup(c.close)
        self.assertTrue(c.read_reply().startswith(b"220"))
        return c

    def backend_lines(self):
        return [l for l in self.backend.received]

    def test_xclient_hidden_by_a_tab_or_leading_blank_never_reaches_the_backend(self):
        c = self.conv()
        for line in (b"XCLIENT\tADDR=10.9.9.9 NAME=trusted.example",
                     b" XCLIENT ADDR=10.9.9.9", b"\tXCLIENT ADDR=10.9.9.9",
                     b"XFORWARD\tADDR=10.9.9.9", b"xclient \t ADDR=10.9.9.9"):
            c.send(line + b"\r\n")
            reply = c.read_reply()
            self.assertTrue(reply.startswith(b"550 5.7.0") or reply.startswith(b"500 5.5.2"),
                            (line, reply))
        c.send(b"NOOP\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        for l in self.backend_lines():
            self.assertNotIn(b"XCLIENT", l.upper())
            self.assertNotIn(b"XFORWARD", l.upper())

    def test_data_with_a_tab_is_still_data_so_headers_are_injected_and_forgeries_removed(self):
        c = self.conv()
        c.send(b"EHLO\tclient.src.test\r\n")
        ehlo = c.read_reply()
        for hidden in (b"AUTH", b"XCLIENT", b"CHUNKING"):
            self.assertNotIn(hidden, ehlo)  # the filter saw an EHLO
        self.assertIn(b"STARTTLS", ehlo)
        c.send(b"MAIL\tFROM:<a@src.test>\r\nRCPT\tTO:<b@dst.test>\r\nDATA\t\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"354"])
        c.send(b"X-TLS-Status: tls=TLSv1.3 forged\r\nSubject: t\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"QUIT\r\n")
        c.read_reply()
        lines = self.backend_lines()
        # The backend got canonical commands, the injected headers, and
        # no forged status header.
        self.assertIn(b"EHLO client.src.test\r\n", lines)
        self.assertIn(b"DATA\r\n", lines)
        self.assertTrue(any(l.startswith(b"Received: from client.src.test") for l in lines))
        status = [l for l in lines if l.lower().startswith(b"x-tls-status")]
        self.assertEqual(len(status), 1, status)
        self.assertNotIn(b"forged", status[0])

    def test_auth_with_a_tab_before_tls_is_refused_like_auth(self):
        c = self.conv()
        c.send(b"EHLO client.src.test\r\n")
        c.read_reply()
        c.send(b"AUTH\tPLAIN AGFAYg==\r\n")
        self.assertTrue(c.read_reply().startswith(b"538 5.7.11"))
        self.assertFalse(any(l.upper().startswith(b"AUTH") for l in self.backend_lines()))


class ClientThatNeverReadsTest(unittest.TestCase):

    def test_replies_the_client_does_not_read_stop_the_proxy_reading(self):
        d = tempfile.mkdtemp(prefix="stp-hard-")
        self.addCleanup(shutil.rmtree, d, True)
        sink = SmtpSink(os.path.join(d, "sink")).start()
        self.addCleanup(sink.stop)
        os.makedirs(os.path.join(d, "p"))
        # No error limit here: this proves backpressure on the proxy's own
        # refusals, which max_errors would otherwise cut short.
        p = Proxy(os.path.join(d, "p"), "%s:%d" % sink.address, proxy={"max_errors": "0"})
        p.start()
        self.addCleanup(p.stop)
        s = socket.create_connection(("127.0.0.1", p.port()))
        self.addCleanup(s.close)
        s.settimeout(2.0)
        chunk = b"\x00\n" * 32768  # each line earns a 52-octet refusal
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:
                s.sendall(chunk)
                sent += len(chunk)
        except socket.timeout:
            pass
        # Kernel buffers on loopback absorb at most a few MiB; a proxy that
        # kept reading would take all 64 MiB (and 26 times that in memory).
        self.assertLess(sent, 24 * 1024 * 1024)


class DescriptorExhaustionTest(unittest.TestCase):

    def test_running_out_of_descriptors_pauses_accepting_and_recovers(self):
        d = tempfile.mkdtemp(prefix="stp-hard-")
        self.addCleanup(shutil.rmtree, d, True)
        sink = SmtpSink(os.path.join(d, "sink")).start()
        self.addCleanup(sink.stop)
        os.makedirs(os.path.join(d, "p"))
        # Descriptors are counted to the last one: the reverse lookup's
        # socket (c-ares, [dns]) would make the backend connect, not
        # accept, the call that meets the limit first.
        p = Proxy(os.path.join(d, "p"), "%s:%d" % sink.address, proxy={"workers": "1"},
                  nofile=40, extra="\n[dns]\nreverse_lookup = no\n")
        p.start()
        self.addCleanup(p.stop)
        held = []
        for _ in range(30):  # two descriptors each: more than 40 allows
            held.append(socket.create_connection(("127.0.0.1", p.port())))
        p.wait_log("event=accept_paused")
        time.sleep(1.0)
        paused = p.log().count("event=accept_paused")
        self.assertLess(paused, 50, "accept loop spins while descriptors are exhausted")
        for h in held:
            h.close()
        # Accepting resumes once descriptors are free again.
        c = None
        for _ in range(100):
            c = SmtpConversation("127.0.0.1", p.port())
            reply = c.read_reply()
            if reply.startswith(b"220"):
                break
            c.close()
            time.sleep(0.1)
        self.addCleanup(c.close)
        self.assertTrue(reply.startswith(b"220"), reply)


if __name__ == "__main__":
    unittest.main()

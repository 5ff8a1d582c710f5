"""Hostile clients and fragile backends (issue 8): one header line that
would pin memory, SASL lines of Kerberos size, output that backs up, a
legacy backend that reads lines into fixed buffers, a second instance on
the same ports, SIGTERM in a transaction, clients that talk before their
turn, and refusals that only the proxy sees.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from fakebackend import ScriptedBackend, counting_mta, legacy_mta, slow_greeting_mta
from peers import SmtpSink, free_port
from proxyproc import PLAIN_PROXY_BIN, PROXY_BIN, Proxy, SmtpConversation

STATUS = b"X-TLS-Status"
MIB = 1024 * 1024


class ProxyCase(unittest.TestCase):
    """A proxy in front of a scripted backend, in a fresh directory."""

    def start(self, handler, proxy=None, listeners=None, binary=None):
        self.dir = tempfile.mkdtemp(prefix="stp-adv-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.backend = ScriptedBackend(handler).start()
        self.addCleanup(self.backend.stop)
        self.proxy = Proxy(self.dir, self.backend.address(), proxy=proxy, listeners=listeners,
                           binary=binary)
        self.proxy.start()
        self.addCleanup(self.proxy.stop)
        return self.proxy

    def another(self, handler, name):
        """A second backend and proxy in this test; returns the proxy and
        a greeted conversation with it."""
        backend = ScriptedBackend(handler).start()
        self.addCleanup(backend.stop)
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        p = Proxy(d, backend.address()).start()
        self.addCleanup(p.stop)
        c = SmtpConversation("127.0.0.1", p.port())
        self.addCleanup(c.close)
        self.assertTrue(c.read_reply().startswith(b"220"))
        return p, c

    def ehlo_conv(self, name="src.test"):
        """A conversation that has had its greeting and its EHLO reply."""
        c = self.conv()
        c.send(b"EHLO " + name.encode() + b"\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        return c

    def begin_data(self, c):
        """MAIL, RCPT and DATA in one write, up to the 354."""
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"354"])

    def conv(self, greet=True, timeout=10.0):
        c = SmtpConversation("127.0.0.1", self.proxy.port(), timeout=timeout)
        self.addCleanup(c.close)
        if greet:
            self.assertTrue(c.read_reply().startswith(b"220"))
        return c


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


class OneSessionMemoryTest(ProxyCase):
    """Defect 1: the peak memory of one session is bounded whatever the
    input. Measured on the build without sanitizers."""

    def test_status_name_and_64_mib_of_blanks_stay_within_the_session_bound(self):
        record = {}
        p = self.start(counting_mta(record), binary=PLAIN_PROXY_BIN)
        c = self.conv(timeout=60)
        c.send(b"EHLO mem.src.test\r\n")
        c.read_reply()
        self.begin_data(c)
        before = peak_rss_kib(p.proc.pid)
        c.send(b"Subject: memory\r\n" + STATUS)
        blanks = b" \t" * (MIB // 2)
        for _ in range(64):
            c.send(blanks)
        c.send(b"x\r\nTo: b@dst.test\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        growth = peak_rss_kib(p.proc.pid) - before
        # The session's own buffers are bounded at about 320 KiB in each
        # direction; 8 MiB leaves room for the allocator, not for the line.
        self.assertLess(growth, 8 * 1024, "peak RSS grew by %d KiB" % growth)
        self.assertNotIn(b"\t \t \t", record["head"])
        self.assertIn(b"Subject: memory\r\nTo: b@dst.test\r\n", record["head"])
        self.assertLess(record["total"], MIB)

    def test_four_sessions_to_a_backend_that_stopped_reading_stay_within_the_bound(self):
        # The backend never reads after its 354; the proxy's buffers must
        # stop the clients.
        handler = legacy_mta({}, stall_in_data=lambda: self.backend.stopping)
        p = self.start(handler, binary=PLAIN_PROXY_BIN)
        before = peak_rss_kib(p.proc.pid)
        convs = []
        for i in range(4):
            c = self.conv()
            c.send(b"EHLO stuck.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n"
                   b"DATA\r\n")
            self.assertEqual([r[:3] for r in c.read_replies(4)], [b"250", b"250", b"250", b"354"])
            convs.append(c)
        blanks = b" " * MIB
        line = (b"y" * 998 + b"\r\n") * 1024
        for c in convs:
            c.sock.settimeout(2.0)
            try:
                c.send(STATUS)
                for _ in range(16):
                    c.send(blanks)
                c.send(b"x\r\n\r\n")
                for _ in range(16):
                    c.send(line)  # stops when the proxy stops reading
            except socket.timeout:
                pass
        growth = peak_rss_kib(p.proc.pid) - before
        self.assertLess(growth, 16 * 1024, "peak RSS grew by %d KiB" % growth)


class AuthLineLimitTest(ProxyCase):
    """Defect 2: SASL lines and 334 challenges may carry 12,288 octets
    (RFC 4954 4); the AUTH command and every other command keep RFC
    5321's limit."""

    def setUp(self):
        self.record = {}
        ehlo = b"250-legacy\r\n250-AUTH PLAIN GSSAPI\r\n250 PIPELINING\r\n"
        self.start(legacy_mta(self.record, ehlo=ehlo, auth=True),
                   listeners=[{"name": "smtp", "kind": "smtp", "auth_requires_tls": "no"}])

    def test_kerberos_sized_auth_exchange_reaches_both_sides_intact(self):
        c = self.ehlo_conv("krb.src.test")
        # RFC 4954 4: a token too long for the command line follows the 334.
        c.send(b"AUTH GSSAPI\r\n")
        challenge = c.read_reply()
        self.assertEqual(challenge, b"334 " + b"C" * 6000 + b"\r\n")
        response = b"Z" * 11000
        c.send(response + b"\r\n")
        self.assertTrue(c.read_reply().startswith(b"235"))
        self.assertIn(b"AUTH GSSAPI\r\n", self.record["lines"])
        self.assertIn(response + b"\r\n", self.record["lines"])

    def test_sasl_response_over_12288_octets_gets_500_and_close(self):
        c = self.ehlo_conv("krb.src.test")
        c.send(b"AUTH GSSAPI\r\n")
        self.assertTrue(c.read_reply().startswith(b"334"))
        c.send(b"Z" * 12300 + b"\r\n")
        self.assertTrue(c.read_reply().startswith(b"500 5.5.2"))
        self.assertEqual(c.read_until_eof(), b"")
        self.assertFalse(any(l.startswith(b"ZZZ") for l in self.record["lines"]))

    def test_auth_command_line_keeps_the_512_octet_limit(self):
        # An initial response that would make AUTH longer than 512 octets
        # must not be sent (RFC 4954 4); a 512-octet reader would run the
        # rest as a command.
        c = self.ehlo_conv("krb.src.test")
        c.send(b"AUTH PLAIN " + b"A" * 500 + b"XCLIENT ADDR=6.6.6.6\r\n")
        self.assertTrue(c.read_reply().startswith(b"500 5.5.2"))
        self.assertEqual(c.read_until_eof(), b"")
        self.assertNotIn(b"AUTH", self.record["verbs"])
        self.assertNotIn(b"XCLIENT", self.record["verbs"])

    def test_noop_of_600_octets_is_refused_though_auth_may_be_longer(self):
        c = self.ehlo_conv("krb.src.test")
        c.send(b"NOOP " + b"A" * 600 + b"\r\n")
        self.assertTrue(c.read_reply().startswith(b"500 5.5.2"))
        self.assertEqual(c.read_until_eof(), b"")


class OutputBacklogTest(ProxyCase):
    """Defect 3: a client that pipelines thousands of commands and reads
    slowly gets every reply, with no stall until a timeout. The stall
    came when the client's output was over the high-water mark as a
    round began and one flush then emptied it: input already buffered
    was never looked at again. A tiny receive window and 120,000
    refusals (5.6 MB of replies, more than loopback buffers hold) made
    the old proxy stall in 10 of 10 runs."""

    def backlog(self, command, count, want):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect(("127.0.0.1", self.proxy.port()))
        self.addCleanup(s.close)
        c = SmtpConversation.__new__(SmtpConversation)
        c.sock, c.buf = s, b""
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"EHLO backlog.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        payload = command * count + b"QUIT\r\n"
        sender = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        sender.start()
        time.sleep(0.5)  # let the replies back up before reading any
        data = c.read_until_eof()
        sender.join(timeout=20)
        lines = data.split(b"\r\n")
        self.assertNotIn(b"421", [l[:3] for l in lines], self.proxy.log()[-2000:])
        self.assertEqual(sum(1 for l in lines if l.startswith(want)), count)
        self.assertTrue(data.endswith(b"221 bye\r\n"), data[-200:])

    def test_pipelined_local_refusals_all_arrive_for_a_slow_reader(self):
        record = {}
        self.start(legacy_mta(record), proxy={"command_timeout": "3s", "max_errors": "0"})
        self.backlog(b"1\r\n", 120000, b"500 5.5.2")

    def test_pipelined_backend_replies_all_arrive_for_a_slow_reader(self):
        self.start(legacy_mta({}, ok=b"250 2.0.0 " + b"r" * 90 + b"\r\n"),
                   proxy={"command_timeout": "3s", "reply_timeout": "3s"})
        self.backlog(b"RSET\r\n", 20000, b"250 2.0.0 rrr")


class LineSplittingBackendTest(ProxyCase):
    """Defect 4: a backend that reads commands into 512-octet buffers and
    message lines into 1000-octet ones can be made neither to run a
    command nor to accept a second message."""

    def setUp(self):
        self.record = {}
        self.start(legacy_mta(self.record))

    def test_noop_padded_to_hide_xclient_is_refused_and_never_split(self):
        c = self.ehlo_conv("split.src.test")
        c.send(b"NOOP " + b"A" * 506 + b"XCLIENT ADDR=6.6.6.6 NAME=trusted.example\r\n")
        self.assertTrue(c.read_reply().startswith(b"500 5.5.2"))
        self.assertEqual(c.read_until_eof(), b"")
        self.assertNotIn(b"XCLIENT", self.record["verbs"])
        self.assertFalse(any(b"XCLIENT" in l for l in self.record["lines"]))

    def test_rcpt_over_512_octets_is_refused_when_the_backend_offers_no_dsn(self):
        c = self.ehlo_conv("split.src.test")
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"RCPT TO:<b@dst.test> X=" + b"A" * 480 + b"XCLIENT ADDR=6.6.6.6\r\n")
        self.assertTrue(c.read_reply().startswith(b"500 5.5.2"))
        self.assertNotIn(b"XCLIENT", self.record["verbs"])

    def test_command_that_fills_a_512_octet_buffer_is_relayed_whole(self):
        # fgets(buf, 512) holds 511 octets; at the RFC's 512 only the LF
        # is left over, and an empty line runs nothing.
        c = self.ehlo_conv("split.src.test")
        line = b"NOOP " + b"A" * (511 - 7) + b"\r\n"
        self.assertEqual(len(line), 511)
        c.send(line)
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertIn(line, self.record["lines"])

    def test_999_octet_body_line_cannot_queue_a_second_message(self):
        c = self.ehlo_conv("split.src.test")
        self.begin_data(c)
        c.send(b"Subject: split\r\n\r\n" + b"x" * 999 + b".\r\n"
               b"MAIL FROM:<forged@evil.test>\r\nRCPT TO:<victim@dst.test>\r\nDATA\r\n"
               b"Subject: forged\r\n\r\nsmuggled\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"QUIT\r\n")
        self.assertTrue(c.read_reply().startswith(b"221"))
        self.assertEqual(len(self.record["messages"]), 1, self.record["messages"])
        self.assertEqual(self.record["verbs"].count(b"MAIL"), 1)
        body = self.record["messages"][0]
        # Broken as Postfix would: 998 octets, CRLF SP, the rest.
        self.assertIn(b"x" * 998 + b"\r\n", body)
        self.assertIn(b"\r\n x.\r\nMAIL FROM:<forged@evil.test>\r\n", body)

    def test_nul_dot_line_is_no_end_for_a_backend_that_strips_nul(self):
        record = {}
        _, c = self.another(legacy_mta(record, strip_nul=True), "nul")
        c.send(b"EHLO nul.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(4)], [b"250", b"250", b"250", b"354"])
        c.send(b"Subject: nul\r\n\r\nline\r\n\x00.\r\nMAIL FROM:<forged@evil.test>\r\n"
               b"RCPT TO:<victim@dst.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"QUIT\r\n")
        c.read_reply()
        self.assertEqual(len(record["messages"]), 1)
        self.assertEqual(record["verbs"].count(b"MAIL"), 1)
        self.assertNotIn(b"\x00", record["messages"][0])

    def test_long_rcpt_with_orcpt_reaches_a_backend_that_offers_dsn(self):
        record = {}
        ehlo = b"250-dsn\r\n250-DSN\r\n250 PIPELINING\r\n"
        _, c = self.another(legacy_mta(record, ehlo=ehlo), "dsn")
        c.send(b"EHLO dsn.src.test\r\n")
        c.read_reply()
        c.send(b"MAIL FROM:<a@src.test> RET=HDRS ENVID=" + b"E" * 100 + b"\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        rcpt = (b"RCPT TO:<b@dst.test> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;" +
                b"o" * 480 + b"@dst.test\r\n")
        self.assertGreater(len(rcpt), 512)
        c.send(rcpt)
        self.assertTrue(c.read_reply().startswith(b"250"))


class SecondInstanceTest(unittest.TestCase):
    """Defect 5: a second process cannot bind ports the proxy holds."""

    def test_second_instance_on_the_same_ports_fails_with_address_in_use(self):
        d = tempfile.mkdtemp(prefix="stp-adv-")
        self.addCleanup(shutil.rmtree, d, True)
        sink = SmtpSink(os.path.join(d, "sink")).start()
        self.addCleanup(sink.stop)
        os.makedirs(os.path.join(d, "a"))
        os.makedirs(os.path.join(d, "b"))
        first = Proxy(os.path.join(d, "a"), "%s:%d" % sink.address,
                      listeners=[{"name": "smtp", "kind": "smtp"},
                                 {"name": "other", "kind": "smtp"}]).start()
        self.addCleanup(first.stop)
        second = Proxy(os.path.join(d, "b"), "%s:%d" % sink.address,
                       listeners=[{"name": "smtp", "kind": "smtp",
                                   "port": first.port("smtp")}])
        with open(second.conf_path, "w") as f:
            f.write(second.config_text())
        out = subprocess.run([PROXY_BIN, "-c", second.conf_path], capture_output=True,
                             timeout=20, cwd=second.workdir)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"Address already in use", out.stdout + out.stderr)
        # Every connection still reaches the first instance.
        connects = first.log().count("event=connect ")
        for _ in range(10):
            with SmtpConversation("127.0.0.1", first.port("smtp")) as c:
                self.assertTrue(c.read_reply().startswith(b"220"))
                c.send(b"QUIT\r\n")
                self.assertTrue(c.read_reply().startswith(b"221"))
        self.assertEqual(first.log().count("event=connect ") - connects, 10)


class ShutdownTransactionTest(unittest.TestCase):
    """Defect 6: after SIGTERM, a transaction begun with an accepted MAIL
    is finished before the session gets 421."""

    def test_sigterm_after_mail_and_rcpt_lets_the_message_finish(self):
        d = tempfile.mkdtemp(prefix="stp-adv-")
        self.addCleanup(shutil.rmtree, d, True)
        sink = SmtpSink(os.path.join(d, "sink")).start()
        self.addCleanup(sink.stop)
        os.makedirs(os.path.join(d, "p"))
        p = Proxy(os.path.join(d, "p"), "%s:%d" % sink.address,
                  proxy={"shutdown_grace": "20s"}).start()
        self.addCleanup(p.stop)
        c = SmtpConversation("127.0.0.1", p.port())
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO term.src.test\r\n")
        c.read_reply()
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        p.signal(signal.SIGTERM)
        p.wait_log("event=stopping")
        c.send(b"DATA\r\n")
        self.assertTrue(c.read_reply().startswith(b"354"))
        c.send(b"Subject: finishing\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        # The transaction is over: now the session is idle and closed.
        self.assertTrue(c.read_reply().startswith(b"421 4.3.2"))
        self.assertEqual(c.read_until_eof(), b"")
        self.assertEqual(len(sink.wait_messages(1)), 1)

    def test_sigterm_lets_the_open_transaction_finish_but_no_new_one_begin(self):
        d = tempfile.mkdtemp(prefix="stp-adv-")
        self.addCleanup(shutil.rmtree, d, True)
        sink = SmtpSink(os.path.join(d, "sink")).start()
        self.addCleanup(sink.stop)
        os.makedirs(os.path.join(d, "p"))
        p = Proxy(os.path.join(d, "p"), "%s:%d" % sink.address,
                  proxy={"shutdown_grace": "20s"}).start()
        self.addCleanup(p.stop)
        c = SmtpConversation("127.0.0.1", p.port())
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO term.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"250"])
        p.signal(signal.SIGTERM)
        p.wait_log("event=stopping")
        c.send(b"DATA\r\n")
        self.assertTrue(c.read_reply().startswith(b"354"))
        # The next transaction pipelined right after the final dot.
        c.send(b"Subject: last\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@src.test>\r\n"
               b"RCPT TO:<b@dst.test>\r\nDATA\r\nSubject: more\r\n\r\nx\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertTrue(c.read_reply().startswith(b"421 4.3.2"))
        self.assertEqual(c.read_until_eof(), b"")
        self.assertEqual(len(sink.wait_messages(1)), 1)

    def test_sigterm_on_an_idle_session_closes_it_at_once(self):
        d = tempfile.mkdtemp(prefix="stp-adv-")
        self.addCleanup(shutil.rmtree, d, True)
        record = {}
        backend = ScriptedBackend(legacy_mta(record)).start()
        self.addCleanup(backend.stop)
        p = Proxy(d, backend.address(), proxy={"shutdown_grace": "20s"}).start()
        self.addCleanup(p.stop)
        c = SmtpConversation("127.0.0.1", p.port())
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO term.src.test\r\n")
        c.read_reply()
        p.signal(signal.SIGTERM)
        self.assertTrue(c.read_reply().startswith(b"421 4.3.2"))
        self.assertEqual(c.read_until_eof(), b"")


class PregreetTest(ProxyCase):
    """Defect 7: talk before the greeting, and commands sent before the
    reply they had to wait for (RFC 5321 3.1, RFC 2920 3.1)."""

    def test_talk_before_greeting_is_logged_and_relayed_by_default(self):
        record = {}
        self.start(slow_greeting_mta(record, 0.5))
        c = self.conv(greet=False)
        c.send(b"EHLO early.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"220"))
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.proxy.wait_log("event=pregreet ")
        self.assertIn(b"EHLO", record["verbs"])

    def test_talk_before_greeting_with_reject_gets_554_and_no_backend_contact(self):
        record = {}
        self.start(legacy_mta(record), proxy={"pregreet": "reject", "pregreet_wait": "3s"})
        c = self.conv(greet=False)
        c.send(b"EHLO early.src.test\r\n")
        reply = c.read_reply()
        self.assertTrue(reply.startswith(b"554 5.5.1"), reply)
        self.assertEqual(c.read_until_eof(), b"")
        self.proxy.wait_log("result=pregreet")
        self.assertEqual(self.backend.connections, 0)

    def test_patient_client_with_reject_delivers_normally(self):
        record = {}
        self.start(legacy_mta(record), proxy={"pregreet": "reject", "pregreet_wait": "200ms"})
        c = self.conv()
        c.send(b"EHLO patient.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.begin_data(c)
        c.send(b"Subject: patient\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertEqual(len(record["messages"]), 1)
        self.assertNotIn("event=sync_violation", self.proxy.log())

    def test_pipelining_without_the_extension_is_logged(self):
        record = {}
        self.start(legacy_mta(record, ehlo=b"250-nopipe\r\n250 8BITMIME\r\n"))
        c = self.ehlo_conv("eager.src.test")
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(2)], [b"250", b"250"])
        self.proxy.wait_log("event=sync_violation ")

    def test_pipelining_without_the_extension_with_reject_gets_554(self):
        record = {}
        self.start(legacy_mta(record, ehlo=b"250-nopipe\r\n250 8BITMIME\r\n"),
                   proxy={"pregreet": "reject", "pregreet_wait": "0"})
        c = self.ehlo_conv("eager.src.test")
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertTrue(c.read_reply().startswith(b"554 5.5.1"))
        self.assertEqual(c.read_until_eof(), b"")
        self.assertNotIn(b"RCPT", record["verbs"])

    def test_command_pipelined_after_ehlo_is_a_violation_even_with_pipelining(self):
        record = {}
        self.start(legacy_mta(record), proxy={"pregreet": "reject", "pregreet_wait": "0"})
        c = self.conv()
        c.send(b"EHLO eager.src.test\r\nMAIL FROM:<a@src.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertTrue(c.read_reply().startswith(b"554 5.5.1"))
        self.assertNotIn(b"MAIL", record["verbs"])

    def test_rfc2920_pipelining_is_no_violation_even_with_reject(self):
        record = {}
        self.start(legacy_mta(record), proxy={"pregreet": "reject", "pregreet_wait": "0"})
        c = self.ehlo_conv("pipe.src.test")
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nRCPT TO:<c@dst.test>\r\n"
               b"DATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(4)], [b"250", b"250", b"250", b"354"])
        c.send(b"Subject: pipe\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(2)], [b"250", b"221"])
        self.assertEqual(len(record["messages"]), 1)
        self.assertNotIn("event=sync_violation", self.proxy.log())


class ErrorLimitTest(ProxyCase):
    """Defect 8: the proxy's own refusals count, and past max_errors the
    session ends with 421 4.7.0."""

    def test_refusals_past_max_errors_end_the_session_with_421(self):
        record = {}
        self.start(legacy_mta(record), proxy={"max_errors": "3"})
        c = self.conv()
        for _ in range(3):
            c.send(b"XCLIENT ADDR=10.1.2.3\r\n")
            self.assertTrue(c.read_reply().startswith(b"550 5.7.0"))
        c.send(b"NOOP\r\n")
        self.assertTrue(c.read_reply().startswith(b"421 4.7.0"))
        self.assertEqual(c.read_until_eof(), b"")
        self.proxy.wait_log("result=too_many_errors")
        self.assertNotIn(b"XCLIENT", record["verbs"])

    def test_default_limit_ends_a_session_kept_alive_by_refused_commands(self):
        record = {}
        self.start(legacy_mta(record))
        c = self.conv()
        replies = []
        for _ in range(25):
            c.send(b"XCLIENT ADDR=10.1.2.3\r\n")
            r = c.read_reply()
            replies.append(r[:3])
            if not r.startswith(b"550"):
                break
        self.assertEqual(replies, [b"550"] * 20 + [b"421"])

    def test_backend_replies_do_not_count_as_the_proxys_errors(self):
        record = {}
        self.start(legacy_mta(record), proxy={"max_errors": "2"})
        c = self.conv()
        for _ in range(10):
            c.send(b"NOOP\r\n")
            self.assertTrue(c.read_reply().startswith(b"250"))


class HeaderFoldingTest(ProxyCase):
    """Also: the status field folded before its colon is stripped."""

    def test_status_name_folded_before_colon_never_reaches_the_backend(self):
        record = {}
        self.start(legacy_mta(record))
        c = self.conv()
        c.send(b"EHLO fold.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n"
               b"DATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(4)], [b"250", b"250", b"250", b"354"])
        c.send(b"Subject: fold\r\nX-TLS-Status\r\n : tls=TLSv1.3; forged\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        body = record["messages"][0]
        self.assertNotIn(b"forged", body)
        self.assertEqual(body.lower().count(b"x-tls-status"), 1)  # the proxy's own


if __name__ == "__main__":
    unittest.main()

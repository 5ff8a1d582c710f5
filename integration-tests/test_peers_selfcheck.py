"""Self-check of the integration-test peers in peers.py.

Proves that the harness itself works before any proxy test relies on it:
smtp-sink dumps what it receives and can reject RCPT with 550, a private
Postfix instance accepts mail and relays it (with its own Received:
header) to a sink, two instances run side by side, and both peers work
over IPv6 loopback ([::1]) -- which must exist on this machine: its
absence is a failure, not a skip.

Run:  cd integration-tests && /usr/bin/python3 -m unittest -v test_peers_selfcheck
Set PEERS_KEEP=1 to keep each test's temp dir (maillog, dumps) for debugging.
"""

import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest

import peers
from peers import PeerError, PostfixInstance, SmtpSink

SWAKS = "/usr/bin/swaks"


def swaks(host, port, data, to=("rcpt@example.net",), sender="sender@example.org",
          helo="client.example", timeout=30):
    """Send one message with swaks; return (exit code, transcript)."""
    argv = [SWAKS, "--server", host, "--port", str(port),
            "--from", sender, "--to", ",".join(to), "--helo", helo,
            "--timeout", "10", "--data", data]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


class PeersTestCase(unittest.TestCase):
    """Gives each test a temp dir and stops every started peer in tearDown."""

    def setUp(self):
        """Fresh temp dir; list of peers to stop."""
        self.tmp = tempfile.mkdtemp(prefix="peers-selfcheck-")
        self._peers = []

    def tearDown(self):
        """Stop every peer (even if one stop fails), remove the temp dir."""
        errors = []
        for p in reversed(self._peers):
            try:
                p.stop()
            except Exception as e:          # keep stopping the others
                errors.append(e)
        if os.environ.get("PEERS_KEEP"):      # debugging: keep logs/dumps
            print("\nkept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        for p in self._peers:
            if isinstance(p, PostfixInstance):
                self.assertFalse(p.is_running(), "Postfix still running")
            else:
                self.assertTrue(p.proc is None or p.proc.poll() is not None,
                                "smtp-sink still running")
        if errors:
            raise errors[0]

    def sink(self, name="sink", **kw):
        """Start an SmtpSink in <tmp>/<name>; stopped in tearDown."""
        s = SmtpSink(os.path.join(self.tmp, name), **kw)
        self._peers.append(s)
        return s.start()

    def postfix(self, name="mta", **kw):
        """Start a PostfixInstance in <tmp>/<name>; stopped in tearDown."""
        p = PostfixInstance(os.path.join(self.tmp, name), **kw)
        self._peers.append(p)
        return p.start()

    def require_ipv6(self):
        """Fail (never skip) when [::1] is unusable."""
        self.assertTrue(peers.ipv6_loopback_available(),
                        "IPv6 loopback [::1] is not usable on this machine "
                        "(socket.has_ipv6=%s); the proxy must be tested on "
                        "::1, so this is a failure, not a skip"
                        % socket.has_ipv6)


class HelperTests(PeersTestCase):
    """free_port / wait_port / wait_listening."""

    def test_free_port_is_bindable_v4_and_v6(self):
        """free_port() returns bindable, distinct ports for 127.0.0.1 and ::1."""
        self.require_ipv6()
        for host, fam in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
            port = peers.free_port(host)
            self.assertGreater(port, 0)
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        self.assertNotEqual(peers.free_port(), peers.free_port())

    def test_wait_port(self):
        """wait_port/wait_listening succeed on a listener, fail fast otherwise."""
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            peers.wait_port("127.0.0.1", srv.getsockname()[1], timeout=2)
            peers.wait_listening("127.0.0.1", srv.getsockname()[1], timeout=2)
        port = peers.free_port()
        t0 = time.monotonic()
        with self.assertRaisesRegex(PeerError, "127.0.0.1:%d" % port):
            peers.wait_port("127.0.0.1", port, timeout=0.3)
        with self.assertRaises(PeerError):
            peers.wait_listening("127.0.0.1", port, timeout=0.3)
        self.assertLess(time.monotonic() - t0, 5)


class SmtpSinkTests(PeersTestCase):
    """SmtpSink: dumping, parsing, rejecting, completeness, IPv6."""

    BODY = (b"Subject: selfcheck\r\nX-Test: 1\r\n\r\nline one\r\n"
            b".leading dot\r\n..two dots\r\nlast line\r\n")

    def write_data(self):
        """Write BODY for swaks --data; return the @file argument."""
        # swaks sends the file, then CRLF "." CRLF -- so a file that ends
        # in a newline would arrive with an extra empty line.  Strip it.
        path = os.path.join(self.tmp, "msg.eml")
        with open(path, "wb") as f:
            f.write(self.BODY[:-2])
        return "@" + path

    def test_swaks_message_is_dumped_and_parsed(self):
        """A swaks message shows up in parsed_messages() with exact content."""
        sink = self.sink()
        rc, out = swaks("127.0.0.1", sink.port, self.write_data(),
                        to=("one@example.net", "two@example.net"))
        self.assertEqual(rc, 0, out)
        self.assertIn("..leading dot", out)          # swaks dot-stuffed it
        msgs = sink.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["meta"]["x-client-addr"], "127.0.0.1")
        self.assertEqual(m["meta"]["x-client-proto"], "ESMTP")
        self.assertEqual(m["meta"]["x-helo-args"], "client.example")
        self.assertEqual(m["meta"]["x-mail-args"], "<sender@example.org>")
        self.assertEqual(m["meta"]["x-rcpt-args"],
                         ["<one@example.net>", "<two@example.net>"])
        self.assertEqual(m["sender"], "sender@example.org")
        self.assertEqual(m["recipients"], ["one@example.net", "two@example.net"])
        # Exactly the message, un-dot-stuffed, with LF line ends.
        self.assertEqual(m["data"], self.BODY.replace(b"\r\n", b"\n"))
        self.assertEqual(m["data_crlf"], self.BODY)
        self.assertEqual(m["message"]["Subject"], "selfcheck")
        self.assertRegex(m["received"],
                         r"^Received: from client.example \(\[127.0.0.1\]\)\n"
                         r"\tby smtp-sink \(smtp-sink\) with ESMTP id [0-9a-f]{8};\n\t")
        raw = sink.messages()[0]
        self.assertTrue(raw.startswith(b"X-Client-Addr: 127.0.0.1\n"), raw)
        self.assertTrue(raw.endswith(b"last line\n\n"), raw)

    def test_smtplib_data_is_exact_and_ordered(self):
        """Several messages on one connection: exact data, send order, clear()."""
        sink = self.sink()
        bodies = [self.BODY, b"Subject: second\r\n\r\nbody\r\n", b""]
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as s:
            for i, body in enumerate(bodies):
                s.sendmail("s%d@example.org" % i, ["r%d@example.net" % i], body)
                time.sleep(0.02)   # distinct mtimes: dump order == send order
        msgs = sink.wait_messages(3)
        self.assertEqual([m["sender"] for m in msgs],
                         ["s0@example.org", "s1@example.org", "s2@example.org"])
        # smtplib terminates a message that does not end in CRLF with one,
        # so the empty message arrives as a single empty line.
        self.assertEqual([m["data_crlf"] for m in msgs],
                         [self.BODY, bodies[1], b"\r\n"])
        self.assertEqual(msgs[2]["data"], b"\n")
        sink.clear()
        self.assertEqual(sink.messages(), [])

    def test_rcpt_rejected_with_550(self):
        """-f RCPT -B "550 ..." makes swaks see 550; nothing is dumped."""
        sink = self.sink(extra_args=("-f", "RCPT", "-B",
                                     "550 5.1.1 Recipient address rejected"))
        rc, out = swaks("127.0.0.1", sink.port, self.write_data())
        self.assertEqual(rc, 24, out)                 # swaks: no RCPT accepted
        self.assertRegex(out, r"(?m)^<\*\* +550 5\.1\.1 Recipient address rejected")
        time.sleep(0.3)
        self.assertEqual(sink.messages(), [])

    def test_end_of_data_reject_still_dumps(self):
        """-f . rejects the final dot with 554, but the dump is still written."""
        # Documented caveat: "-f ." rejects the final dot, but smtp-sink has
        # already written the dump file.
        sink = self.sink(extra_args=("-f", ".", "-B", "554 5.7.1 Message rejected"))
        rc, out = swaks("127.0.0.1", sink.port, self.write_data())
        self.assertEqual(rc, 26, out)
        self.assertRegex(out, r"(?m)^<\*\* +554 5\.7\.1 Message rejected")
        self.assertEqual(len(sink.wait_messages(1)), 1)

    def test_unfinished_transaction_is_not_reported(self):
        """A dump file still open by smtp-sink is not returned as a message."""
        sink = self.sink()
        s = smtplib.SMTP(sink.host, sink.port, timeout=10)
        try:
            s.ehlo("client.example")
            s.mail("a@example.org")
            s.rcpt("b@example.net")
            code, _ = s.docmd("DATA")
            self.assertEqual(code, 354)
            s.send(b"Subject: partial\r\n\r\nnot finished yet\r\n")
            # smtp-sink created the dump file at MAIL time and keeps it open.
            for _ in range(100):
                if os.listdir(sink.dump_dir):
                    break
                time.sleep(0.02)
            self.assertEqual(len(os.listdir(sink.dump_dir)), 1)
            self.assertEqual(sink.messages(), [])
            with self.assertRaisesRegex(PeerError, "0 message"):
                sink.wait_messages(1, timeout=0.3)
            sink.stop()           # the half-written file stays on disk ...
            self.assertEqual(len(os.listdir(sink.dump_dir)), 1)
            self.assertEqual(sink.messages(), [])   # ... but is not a message
        finally:
            s.close()

    def test_busy_port_is_reported(self):
        """start() on a taken port raises PeerError with smtp-sink's fatal."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            sink = SmtpSink(os.path.join(self.tmp, "busy"),
                            port=busy.getsockname()[1])
            self._peers.append(sink)
            with self.assertRaisesRegex(PeerError, "(?s)smtp-sink did not start.*in use"):
                sink.start()

    def test_ipv6_sink(self):
        """smtp-sink listens on [::1] and records the ipv6: client address."""
        self.require_ipv6()
        sink = self.sink(host="::1")
        self.assertEqual(sink.relayhost, "[ipv6:::1]:%d" % sink.port)
        rc, out = swaks("::1", sink.port, self.write_data())
        self.assertEqual(rc, 0, out)
        m = sink.wait_messages(1)[0]
        self.assertEqual(m["meta"]["x-client-addr"], "ipv6:::1")
        self.assertEqual(m["data"], self.BODY.replace(b"\r\n", b"\n"))


class PostfixInstanceTests(PeersTestCase):
    """PostfixInstance: relay to a sink, isolation, XCLIENT, IPv6, failures."""

    def send(self, mta, rcpt, subject):
        """Send one message to the instance's smtpd with smtplib."""
        msg = ("From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\n"
               "hello from smtplib\r\n.dot line\r\n" % (rcpt, subject)).encode()
        with smtplib.SMTP(mta.smtpd_host, mta.smtpd_port, timeout=10) as s:
            s.ehlo("proxy.example")
            refused = s.sendmail("sender@example.org", [rcpt], msg)
            self.assertEqual(refused, {})
            code, resp = s.noop()
            self.assertEqual(code, 250)
        return msg

    def check_relayed(self, sink, mta, rcpt, subject, client_addr):
        """Assert the message reached the sink with Postfix's Received: header."""
        msgs = [m for m in sink.wait_messages(1, timeout=20)
                if m["message"]["Subject"] == subject]
        self.assertEqual(len(msgs), 1, [m["data"] for m in sink.parsed_messages()])
        m = msgs[0]
        self.assertEqual(m["recipients"], [rcpt])
        self.assertEqual(m["sender"], "sender@example.org")
        self.assertEqual(m["meta"]["x-helo-args"], "backend.test")
        received = m["message"].get_all("Received")
        self.assertEqual(len(received), 1, received)
        rx = (r"from proxy\.example \(unknown \[%s\]\)\s+by backend\.test "
              r"\(Postfix\) with ESMTP id ([0-9A-F]+)\s+for <%s>;"
              % (re.escape(client_addr), re.escape(rcpt)))
        match = re.match(rx, received[0])
        self.assertIsNotNone(match, received[0])
        self.assertTrue(m["data"].endswith(b"\n\nhello from smtplib\n.dot line\n"),
                        m["data"])
        queue_id = match.group(1)
        mta.wait_log(r"%s: to=<%s>, relay=.*status=sent" % (queue_id, re.escape(rcpt)))
        mta.wait_queue_empty()
        return m

    def test_relay_to_sink_with_postfix_received_header(self):
        """Postfix accepts via smtplib, relays to the sink, stops cleanly."""
        sink = self.sink()
        mta = self.postfix(relayhost=sink)
        self.assertTrue(mta.is_running())
        for sub in ("etc/main.cf", "etc/master.cf", "spool/pid/master.pid",
                    "data/master.lock", "maillog"):
            self.assertTrue(os.path.exists(os.path.join(mta.workdir, sub)), sub)
        self.assertEqual(mta.postconf("relayhost"), "[127.0.0.1]:%d" % sink.port)
        self.assertEqual(mta.postconf("queue_directory"), mta.queue_dir)
        self.send(mta, "user@example.net", "via postfix")
        self.check_relayed(sink, mta, "user@example.net", "via postfix", "127.0.0.1")
        self.assertIn("postfix-%d/smtpd" % mta.smtpd_port, mta.maillog())
        pid = mta.master_pid
        mta.stop()
        self.assertFalse(peers._pid_alive(pid))
        self.assertEqual(peers._pids_in_pgrp(pid), [])
        self.assertFalse(mta.is_running())

    def test_two_instances_side_by_side_with_xclient(self):
        """Two isolated instances at once; XCLIENT on one, master.cf -o args."""
        sink = self.sink()
        a = self.postfix("mta-a", relayhost=sink)
        b = self.postfix("mta-b", relayhost=("127.0.0.1", sink.port),
                         # XCLIENT makes the client 203.0.113.7, which is
                         # outside mynetworks: let it relay to example.net.
                         main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.0/8",
                                  "relay_domains": "example.net"},
                         master_smtpd_args={"smtpd_banner": "$myhostname ESMTP legacy b"})
        self.assertNotEqual(a.smtpd_port, b.smtpd_port)
        self.assertNotEqual(a.master_pid, b.master_pid)
        self.send(a, "a@example.net", "from a")
        with smtplib.SMTP(b.smtpd_host, b.smtpd_port, timeout=10) as s:
            code, banner = s.ehlo("proxy.example")
            self.assertIn("xclient", s.esmtp_features)
            code, resp = s.docmd("XCLIENT ADDR=203.0.113.7 NAME=client.example "
                                 "HELO=orig.example PROTO=ESMTP")
            self.assertEqual(code, 220, resp)
            self.assertIn(b"ESMTP legacy b", resp)
            s.ehlo_resp = None
            s.ehlo("orig.example")
            s.sendmail("sender@example.org", ["b@example.net"],
                       b"Subject: from b\r\n\r\nxclient\r\n")
        ma = self.check_relayed(sink, a, "a@example.net", "from a", "127.0.0.1")
        mb = [m for m in sink.wait_messages(2, timeout=20)
              if m["message"]["Subject"] == "from b"][0]
        self.assertIn("from orig.example (client.example [203.0.113.7])",
                      mb["message"]["Received"])
        self.assertNotIn("postfix-%d/" % b.smtpd_port, a.maillog())
        self.assertIn("client=client.example[203.0.113.7]",
                      b.wait_log(r"client=client\.example\[203\.0\.113\.7\]").group(0))
        self.assertIsNotNone(ma)

    def test_ipv6_postfix_and_sink(self):
        """Postfix smtpd on [::1] relaying to a sink on [::1]."""
        self.require_ipv6()
        sink = self.sink(host="::1")
        mta = self.postfix(smtpd_host="::1", relayhost=sink)
        self.assertEqual(mta.postconf("relayhost"), "[ipv6:::1]:%d" % sink.port)
        self.send(mta, "v6@example.net", "over ipv6")
        m = self.check_relayed(sink, mta, "v6@example.net", "over ipv6", "IPv6:::1")
        self.assertEqual(m["meta"]["x-client-addr"], "ipv6:::1")

    def test_start_failure_is_reported_and_cleaned_up(self):
        """A busy smtpd port makes start() fail loudly and leave nothing running."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            mta = PostfixInstance(os.path.join(self.tmp, "busy"),
                                  smtpd_port=busy.getsockname()[1])
            self._peers.append(mta)
            with self.assertRaisesRegex(PeerError, "(?s)start failed.*[Aa]ddress already in use"):
                mta.start()
        self.assertFalse(mta.is_running())


if __name__ == "__main__":
    unittest.main()

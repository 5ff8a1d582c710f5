"""Reverse DNS of the client (README "Who the client is", [dns]): a real
DNS server on loopback (dnsmasq) answers the proxy's PTR and forward
queries, and a scripted backend that speaks XCLIENT records what reached
it, so each test sees the name in the XCLIENT line, the Received header
and the event=end log line.

Loopback addresses stand for different clients (the client binds its
source address):

  127.0.0.1  PTR name.example, whose A is 127.0.0.1       -> confirmed
  127.0.0.2  PTR liar.example, whose A is 192.0.2.1       -> not confirmed
  127.0.0.3  no PTR (NXDOMAIN)                            -> no name
  ::1        PTR name6.example, whose AAAA is ::1         -> confirmed (IPv6)

A UDP socket that never answers stands for a DNS server that is down.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from fakebackend import ScriptedBackend, legacy_mta
from mailcheck import header_values, squeeze
from peers import free_port, wait_listening
from proxyproc import Proxy, SmtpConversation

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


class Dnsmasq:
    """A private dnsmasq on 127.0.0.1:|port| with only the records given:
    no /etc/hosts, no resolv.conf, no upstream, no DHCP, no pid file.
    Names under example. and the 127.0.0.x reverse zone that it does not
    hold are NXDOMAIN (--local)."""

    def __init__(self, workdir, records):
        self.port = free_port()
        self.log_path = os.path.join(workdir, "dnsmasq.log")
        self.args = [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--pid-file=",
                     "--port=%d" % self.port, "--listen-address=127.0.0.1",
                     "--bind-interfaces", "--no-resolv", "--no-hosts", "--log-queries",
                     "--local=/example/", "--local=/0.0.127.in-addr.arpa/",
                     "--local=/ip6.arpa/"] + records
        self.proc = None

    def start(self):
        self.logfile = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.logfile, stderr=subprocess.STDOUT)
        try:
            wait_listening("127.0.0.1", self.port, timeout=10, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("dnsmasq did not start:\n" + self.log())
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
            self.logfile.close()


class SilentDns:
    """A UDP socket on 127.0.0.1 that takes queries and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class ReverseDnsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-rdns-")
        # --host-record gives the A/AAAA record and the matching PTR;
        # liar.example's PTR points at it from 127.0.0.2, its A elsewhere.
        cls.dns = Dnsmasq(cls.dir, [
            "--host-record=name.example,127.0.0.1",
            "--host-record=name6.example,::1",
            "--ptr-record=2.0.0.127.in-addr.arpa,liar.example",
            "--host-record=liar.example,192.0.2.1",
        ]).start()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def start(self, servers, identity="xclient", timeout="2s", reverse_lookup="yes",
              six=False):
        """A legacy backend that answers XCLIENT, and a proxy in front of it
        asking |servers|; returns (proxy, record)."""
        pdir = tempfile.mkdtemp(dir=self.dir)
        record = {}
        backend = ScriptedBackend(legacy_mta(record)).start()
        self.addCleanup(backend.stop)
        listeners = [{"name": "smtp", "kind": "smtp"}]
        if six:
            listeners.append({"name": "smtp6", "kind": "smtp", "host": "::1"})
        proxy = Proxy(pdir, backend.address(), listeners=listeners,
                      backend_keys={"identity": identity},
                      extra="\n[dns]\nreverse_lookup = %s\ntimeout = %s\nservers = %s\n" % (
                          reverse_lookup, timeout, servers))
        proxy.start()
        self.addCleanup(proxy.stop)
        return proxy, record

    def mail(self, proxy, source="127.0.0.1", host="127.0.0.1", listener="smtp"):
        """One message from |source|. self.client_port is the client's
        port, for finding its XCLIENT. |timeout| bounds every read."""
        with SmtpConversation(host, proxy.port(listener), timeout=15, source=source) as c:
            self.client_port = c.sock.getsockname()[1]
            greeting = c.read_reply()
            self.assertTrue(greeting.startswith(b"220 "), greeting)
            c.send(b"EHLO client.src.test\r\n")
            self.assertTrue(c.read_reply().startswith(b"250"))
            c.send(b"MAIL FROM:<a@src.test>\r\n")
            self.assertTrue(c.read_reply().startswith(b"250"))
            c.send(b"RCPT TO:<b@dst.test>\r\n")
            self.assertTrue(c.read_reply().startswith(b"250"))
            c.send(b"DATA\r\n")
            self.assertTrue(c.read_reply().startswith(b"354"))
            c.send(b"Subject: rdns\r\n\r\nbody\r\n.\r\n")
            self.assertTrue(c.read_reply().startswith(b"250"))
            c.send(b"QUIT\r\n")
            c.read_reply()

    def xclient_line(self, record):
        """The XCLIENT of the last mail() (the proxy's start-up probe
        connects too, and gets one of its own)."""
        port = b" PORT=%d " % self.client_port
        lines = [l for l in record.get("lines", []) if l.startswith(b"XCLIENT ") and port in l]
        self.assertEqual(len(lines), 1, record.get("lines"))
        return lines[0].decode()

    def received(self, record):
        self.assertEqual(len(record.get("messages", [])), 1, record)
        ours = [squeeze(r) for r in header_values(record["messages"][0], "Received")
                if "(smtp-tls-proxy)" in r]
        self.assertEqual(len(ours), 1)
        return ours[0]

    def end_line(self, proxy, source):
        """The event=end line of the session from |source| that delivered a
        message (the proxy's start-up probe is a session too)."""
        for _ in range(200):
            lines = [l for l in proxy.log().splitlines()
                     if "event=end client=%s " % source in l and " accepted=1 " in l]
            if lines:
                return lines[-1]
            time.sleep(0.05)
        self.fail("no event=end line with a message from %s:\n%s" % (source, proxy.log()))

    # ---- what each answer becomes ----

    def test_confirmed_name_reaches_received_xclient_and_log(self):
        proxy, record = self.start("127.0.0.1:%d" % self.dns.port)
        self.mail(proxy, source="127.0.0.1")
        self.assertIn(" NAME=name.example ADDR=127.0.0.1 ", self.xclient_line(record))
        self.assertIn("from client.src.test (name.example [127.0.0.1])", self.received(record))
        self.assertIn(" name=name.example ", self.end_line(proxy, "127.0.0.1"))

    def test_confirmed_ipv6_name_uses_ip6_arpa_and_aaaa(self):
        proxy, record = self.start("127.0.0.1:%d" % self.dns.port, six=True)
        self.mail(proxy, source="::1", host="::1", listener="smtp6")
        self.assertIn(" NAME=name6.example ADDR=IPV6:::1 ", self.xclient_line(record))
        self.assertIn("(name6.example [IPv6:::1])", self.received(record))
        self.assertIn(" name=name6.example ", self.end_line(proxy, "::1"))

    def test_ptr_whose_forward_lookup_has_another_address_is_no_name(self):
        proxy, record = self.start("127.0.0.1:%d" % self.dns.port)
        self.mail(proxy, source="127.0.0.2")
        line = self.xclient_line(record)
        self.assertIn(" NAME=[UNAVAILABLE] ADDR=127.0.0.2 ", line)
        self.assertNotIn("liar", line)
        received = self.received(record)
        self.assertIn("(unknown [127.0.0.2])", received)
        self.assertNotIn("liar", received)
        self.assertIn(" name=- ", self.end_line(proxy, "127.0.0.2"))
        # The proxy did ask for the forward record: a mismatch, not a miss.
        log = self.dns.log()
        self.assertIn("query[PTR] 2.0.0.127.in-addr.arpa", log)
        self.assertIn("query[A] liar.example", log)

    def test_nxdomain_is_no_name(self):
        proxy, record = self.start("127.0.0.1:%d" % self.dns.port)
        self.mail(proxy, source="127.0.0.3")
        self.assertIn(" NAME=[UNAVAILABLE] ADDR=127.0.0.3 ", self.xclient_line(record))
        self.assertIn("(unknown [127.0.0.3])", self.received(record))
        self.assertIn(" name=- ", self.end_line(proxy, "127.0.0.3"))

    def test_silent_server_gives_tempunavail_within_the_timeout(self):
        silent = SilentDns()
        self.addCleanup(silent.close)
        proxy, record = self.start("127.0.0.1:%d" % silent.port, timeout="1s")
        self.mail(proxy, source="127.0.0.1")
        # XCLIENT (and so the greeting) waited for the lookup's outcome: the
        # timeout, which XCLIENT reports as TEMPUNAVAIL.
        self.assertIn(" NAME=[TEMPUNAVAIL] ADDR=127.0.0.1 ", self.xclient_line(record))
        self.assertIn("(unknown [127.0.0.1])", self.received(record))
        self.assertIn(" name=- ", self.end_line(proxy, "127.0.0.1"))

    # ---- who waits, and for how long ----

    def test_without_xclient_nothing_waits_for_a_silent_server(self):
        silent = SilentDns()
        self.addCleanup(silent.close)
        # A lookup that cannot end before 60 s, and reads bounded at 15 s: a
        # greeting that waited for it would never come in time.
        proxy, record = self.start("127.0.0.1:%d" % silent.port, identity="none",
                                   timeout="60s")
        self.mail(proxy, source="127.0.0.1")
        # The message went through while the lookup was still running:
        # what is known at DATA is no name.
        self.assertIn("(unknown [127.0.0.1])", self.received(record))
        self.assertNotIn(b"XCLIENT", b"".join(record.get("lines", [])))

    def test_session_ending_before_its_lookup_answers_is_freed_cleanly(self):
        """The lookup is cancelled when the session ends first: the deadline
        and c-ares's own retries come later and must not touch the freed
        session (ASan checks it at stop)."""
        silent = SilentDns()
        self.addCleanup(silent.close)
        proxy, record = self.start("127.0.0.1:%d" % silent.port, timeout="1s")
        for _ in range(5):
            with SmtpConversation("127.0.0.1", proxy.port(), source="127.0.0.1"):
                pass  # gone before the greeting
        time.sleep(2.5)  # past the deadline and c-ares's second try
        # The proxy still serves, with the same channel.
        self.mail(proxy, source="127.0.0.1")
        self.assertIn(" NAME=[TEMPUNAVAIL] ", self.xclient_line(record))
        proxy.stop()  # raises on any sanitizer report

    def test_reload_moves_new_sessions_to_new_servers(self):
        """SIGHUP with other servers: new sessions ask them at once, while a
        lookup already in flight finishes on the old channel (which is freed
        afterwards; ASan checks it at stop)."""
        silent = SilentDns()
        self.addCleanup(silent.close)
        proxy, record = self.start("127.0.0.1:%d" % silent.port, timeout="2s")
        early = SmtpConversation("127.0.0.1", proxy.port(), timeout=15, source="127.0.0.1")
        self.addCleanup(early.close)
        early_port = early.sock.getsockname()[1]
        proxy.wait_log("event=connect client=127.0.0.1 port=%d " % early_port)
        with open(proxy.conf_path) as f:
            text = f.read()
        with open(proxy.conf_path, "w") as f:
            f.write(text.replace("servers = 127.0.0.1:%d" % silent.port,
                                 "servers = 127.0.0.1:%d" % self.dns.port))
        proxy.signal(signal.SIGHUP)
        proxy.wait_log("event=reload result=ok")
        self.mail(proxy, source="127.0.0.1")
        self.assertIn(" NAME=name.example ", self.xclient_line(record))
        # The early session still waits for its old lookup, then goes on.
        self.assertTrue(early.read_reply().startswith(b"220 "))
        self.client_port = early_port
        self.assertIn(" NAME=[TEMPUNAVAIL] ", self.xclient_line(record))
        early.send(b"QUIT\r\n")
        early.read_reply()
        early.close()
        proxy.stop()  # raises on any sanitizer report

    def test_reverse_lookup_off_asks_nothing(self):
        proxy, record = self.start("127.0.0.1:%d" % self.dns.port, reverse_lookup="no")
        before = self.dns.log().count("query[PTR] 1.0.0.127.in-addr.arpa")
        self.mail(proxy, source="127.0.0.1")
        self.assertIn(" NAME=[UNAVAILABLE] ADDR=127.0.0.1 ", self.xclient_line(record))
        self.assertIn("(unknown [127.0.0.1])", self.received(record))
        self.assertEqual(self.dns.log().count("query[PTR] 1.0.0.127.in-addr.arpa"), before)


if __name__ == "__main__":
    unittest.main()

"""The STARTTLS failure memory (issue 12, ARCHITECTURE.md §5.6): a sender
whose handshake after STARTTLS failed on a kind smtp listener is not
offered STARTTLS for a while, so its next attempt is delivered in
plaintext; submission listeners are never weakened.

Real senders: swaks limited to TLS 1.2 against a listener that takes only
TLS 1.3 (-tlsos: use STARTTLS when advertised, give up when it fails, the
behaviour that loses mail), Python's ssl, raw sockets; the backend is
Postfix's smtp-sink.
"""
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest
import urllib.request

from peers import SmtpSink, free_port
from proxyproc import PLAIN_PROXY_BIN, PROXY_BIN, Proxy, SmtpConversation
from tlsharness import CA, MX_CERTIFICATES, TOOL_TIMEOUT

# kind smtp takes only TLS 1.3: a TLS 1.2 client's handshake fails.
LISTENERS = (
    {"name": "smtp", "kind": "smtp", "tls": "starttls", "min_tls_version": "TLSv1.3"},
    {"name": "submission", "kind": "submission", "tls": "starttls",
     "min_tls_version": "TLSv1.3"},
    {"name": "submissions", "kind": "submissions"},
)


def read(path):
    with open(path) as f:
        return f.read()


def swaks(port, source, *args, body="Subject: memory test\r\n\r\nhello\r\n"):
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--local-interface",
            source, "--from", "a@src.test", "--to", "b@dst.test", "--helo", "sender.src.test",
            "--timeout", "20", "--body", body] + list(args)
    r = subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


def tls12_sender(port, source):
    """A sender that can only do TLS 1.2 and gives up when STARTTLS fails."""
    return swaks(port, source, "--tls-optional-strict", "--tls-protocol", "tlsv1_2")


class MemoryTest(unittest.TestCase):
    """A backend (smtp-sink) and a proxy with a state_dir, a control
    socket and metrics, in a fresh directory."""

    listeners = LISTENERS
    memory = {}
    proxy_keys = {}
    start_proxy = True

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-mem-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink"))
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.state_dir)
        # A directory others may enter: the socket's own mode must keep
        # other users out.
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.run_dir)
        os.chmod(self.dir, 0o755)
        os.chmod(self.run_dir, 0o755)
        self.socket_path = os.path.join(self.run_dir, "control.sock")
        self.metrics_port = free_port()
        self.proxy = None
        if self.start_proxy:
            self.proxy = self.make_proxy()
            self.proxy.start()
            self.addCleanup(self.stop_proxy)

    def make_proxy(self, binary=None, name="proxy", memory=None, metrics_port=None):
        keys = {"state_dir": self.state_dir, "control_socket": self.socket_path}
        keys.update(self.proxy_keys)
        mem = dict(self.memory)
        mem.update(memory or {})
        extra = MX_CERTIFICATES
        extra += "\n[metrics]\naddress = 127.0.0.1:%d\n" % (metrics_port or self.metrics_port)
        extra += "\n[starttls_memory]\n" + "".join("%s = %s\n" % kv for kv in mem.items())
        workdir = os.path.join(self.dir, name)
        os.makedirs(workdir, exist_ok=True)
        return Proxy(workdir, "%s:%d" % self.sink.address,
                     listeners=[dict(l) for l in self.listeners], proxy=keys, extra=extra,
                     binary=binary)

    def stop_proxy(self):
        if self.proxy is not None:
            self.proxy.stop()

    def restart(self):
        ports = dict(self.proxy.ports)
        self.proxy.stop()
        listeners = [dict(l, port=ports[l["name"]]) for l in self.listeners]
        self.proxy = self.make_proxy(name="proxy2")
        self.proxy.listeners = listeners
        self.proxy.start()

    # ---- clients ----

    def port(self, name="smtp"):
        return self.proxy.port(name)

    def ehlo(self, source, listener="smtp"):
        """Greeting and EHLO from |source|; returns (conversation, EHLO reply)."""
        c = SmtpConversation("127.0.0.1", self.port(listener), source=source)
        self.addCleanup(c.close)
        reply = c.read_reply()
        self.assertTrue(reply.startswith(b"220 "), reply)
        c.send(b"EHLO sender.src.test\r\n")
        reply = c.read_reply()
        self.assertTrue(reply.startswith(b"250"), reply)
        return c, reply

    def offered(self, source, listener="smtp"):
        c, reply = self.ehlo(source, listener)
        c.send(b"QUIT\r\n")
        c.read_reply()
        return b"STARTTLS" in reply

    def fail_handshake(self, source):
        """A TLS 1.2-only sender from |source| tries and fails."""
        code, out = tls12_sender(self.port(), source)
        self.assertNotEqual(code, 0, out)
        self.assertIn("STARTTLS", out)
        self.proxy.wait_log("event=tls_failed client=%s " % source)
        return out

    def memory_cli(self, *args, user=None):
        argv = [PROXY_BIN, "-c", self.proxy.conf_path, "memory"] + list(args)
        if user is not None:
            argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
        r = subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=10) as r:
            return r.read().decode()

    def metric(self, name, **labels):
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"^smtp_tls_proxy_%s(\{([^}]*)\})? (\S+)$" % name, line)
            if m and ",".join(sorted((m.group(2) or "").split(","))) == want:
                return float(m.group(3))
        self.fail("no metric %s{%s}:\n%s" % (name, want, self.metrics()))

    def end_line(self, client, needle=""):
        """The last event=end line of a session from |client| containing |needle|."""
        for _ in range(200):
            lines = [l for l in self.proxy.log().splitlines()
                     if "event=end client=%s " % client in l and needle in l]
            if lines:
                return lines[-1]
            time.sleep(0.05)
        self.fail("no event=end line for %s:\n%s" % (client, self.proxy.log()))


class FailureMemoryTest(MemoryTest):

    def test_sender_whose_handshake_failed_is_delivered_in_plaintext_next_time_exactly_once(self):
        out = self.fail_handshake("127.0.0.2")
        self.assertRegex(self.proxy.log(),
                         r"event=tls_failed client=127\.0\.0\.2 listener=smtp mode=starttls "
                         r"reason=\S+ remembered=yes key=127\.0\.0\.2/32")
        self.assertEqual(self.sink.messages(), [], out)
        code, out = tls12_sender(self.port(), "127.0.0.2")
        self.assertEqual(code, 0, out)
        self.assertNotIn("STARTTLS", out.split("EHLO sender.src.test", 1)[1].split("MAIL", 1)[0])
        self.sink.wait_messages(1)
        time.sleep(0.3)  # a duplicate would have arrived by now
        msgs = self.sink.parsed_messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"tls=none", msgs[0]["data_crlf"])
        self.assertRegex(self.proxy.log(), r"event=starttls_withheld client=127\.0\.0\.2 "
                                           r"listener=smtp reason=remembered key=127\.0\.0\.2/32")
        line = self.end_line("127.0.0.2", "starttls=withheld")
        self.assertIn("accepted=1", line)
        self.assertEqual(self.metric("starttls_total", listener="smtp", event="withheld"), 1)
        self.assertEqual(self.metric("starttls_total", listener="smtp", event="failed"), 1)
        self.assertEqual(self.metric("starttls_memory_entries"), 1)
        self.assertGreaterEqual(
            self.metric("tls_handshake_failures_total", listener="smtp",
                        reason="protocol_version"), 1)

    def test_remembered_sender_gets_502_to_starttls(self):
        self.fail_handshake("127.0.0.2")
        c, reply = self.ehlo("127.0.0.2")
        self.assertNotIn(b"STARTTLS", reply)
        c.send(b"STARTTLS\r\n")
        self.assertTrue(c.read_reply().startswith(b"502 5.5.1"))
        # The session goes on in plaintext.
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))

    def test_by_default_a_sender_leaving_without_mail_stays_remembered(self):
        self.fail_handshake("127.0.0.11")
        for _ in range(3):
            self.assertFalse(self.offered("127.0.0.11"))
        self.assertNotIn("event=starttls_memory_released", self.proxy.log())

    def test_another_address_is_still_offered_starttls(self):
        self.fail_handshake("127.0.0.2")
        self.assertFalse(self.offered("127.0.0.2"))
        self.assertTrue(self.offered("127.0.0.3"))

    def test_submission_keeps_requiring_tls_for_a_remembered_client(self):
        self.fail_handshake("127.0.0.2")
        c, reply = self.ehlo("127.0.0.2", "submission")
        self.assertIn(b"STARTTLS", reply)
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"530 5.7.0"))
        # A failed handshake there is not remembered.
        code, out = swaks(self.port("submission"), "127.0.0.4", "--tls",
                          "--tls-protocol", "tlsv1_2")
        self.assertNotEqual(code, 0, out)
        self.proxy.wait_log("event=tls_failed client=127.0.0.4 listener=submission")
        self.assertRegex(self.proxy.log(), r"client=127\.0\.0\.4 listener=submission "
                                           r"mode=starttls reason=\S+ remembered=no")
        self.assertTrue(self.offered("127.0.0.4"))

    def test_a_tls_success_from_the_same_key_clears_the_entry(self):
        self.fail_handshake("127.0.0.2")
        self.assertFalse(self.offered("127.0.0.2"))
        import ssl
        ctx = ssl.create_default_context(cafile=CA)
        raw = socket.create_connection(("127.0.0.1", self.port("submissions")), timeout=10,
                                       source_address=("127.0.0.2", 0))
        with ctx.wrap_socket(raw, server_hostname="mx.example.test") as tls:
            tls.recv(100)
        self.proxy.wait_log("event=starttls_memory_cleared client=127.0.0.2 key=127.0.0.2/32")
        self.assertTrue(self.offered("127.0.0.2"))

    def test_client_that_never_sends_a_client_hello_is_remembered(self):
        c, reply = self.ehlo("127.0.0.5")
        self.assertIn(b"STARTTLS", reply)
        c.send(b"STARTTLS\r\n")
        self.assertTrue(c.read_reply().startswith(b"220 2.0.0"))
        c.close()
        self.proxy.wait_log("event=tls_failed client=127.0.0.5")
        self.assertRegex(self.proxy.log(), r"client=127\.0\.0\.5 listener=smtp mode=starttls "
                                           r"reason=client_closed_before_client_hello "
                                           r"remembered=yes")
        self.assertFalse(self.offered("127.0.0.5"))
        self.assertGreaterEqual(self.metric("tls_handshake_failures_total", listener="smtp",
                                            reason="no_client_hello"), 1)


    def test_client_that_rejects_the_certificate_is_remembered(self):
        import ssl
        c, _ = self.ehlo("127.0.0.7")
        c.send(b"STARTTLS\r\n")
        self.assertTrue(c.read_reply().startswith(b"220 2.0.0"))
        ctx = ssl.create_default_context()  # the system CAs: not the test CA
        with self.assertRaises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(c.sock, server_hostname="mx.example.test")
        self.proxy.wait_log("event=tls_failed client=127.0.0.7")
        self.assertRegex(self.proxy.log(), r"client=127\.0\.0\.7 listener=smtp mode=starttls "
                                           r"reason=\S+ remembered=yes")
        self.assertFalse(self.offered("127.0.0.7"))

    def test_connection_reset_during_the_handshake_is_remembered(self):
        import struct
        c, _ = self.ehlo("127.0.0.8")
        c.send(b"STARTTLS\r\n")
        self.assertTrue(c.read_reply().startswith(b"220 2.0.0"))
        # The start of a ClientHello record, then a reset (SO_LINGER 0).
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()
        self.proxy.wait_log("event=tls_failed client=127.0.0.8")
        self.assertRegex(self.proxy.log(), r"client=127\.0\.0\.8 listener=smtp mode=starttls "
                                           r"reason=\S+ remembered=yes")
        self.assertFalse(self.offered("127.0.0.8"))


class Ipv6Test(MemoryTest):
    listeners = (
        {"name": "smtp", "kind": "smtp", "tls": "starttls", "min_tls_version": "TLSv1.3",
         "host": "::1"},
    )

    def test_an_ipv6_client_is_remembered_by_its_slash_64(self):
        c = SmtpConversation("::1", self.port())
        self.addCleanup(c.close)
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"EHLO sender.src.test\r\nSTARTTLS\r\n")
        self.assertIn(b"STARTTLS", c.read_reply())
        self.assertTrue(c.read_reply().startswith(b"220 2.0.0"))
        c.close()
        self.proxy.wait_log("event=tls_failed client=::1 ")
        self.assertRegex(self.proxy.log(), r"remembered=yes key=::/64")
        c = SmtpConversation("::1", self.port())
        self.addCleanup(c.close)
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"EHLO sender.src.test\r\n")
        self.assertNotIn(b"STARTTLS", c.read_reply())


class ReleaseWithoutMailTest(MemoryTest):
    memory = {"release_without_mail": "yes"}

    def test_a_remembered_sender_that_requires_tls_is_released_when_it_leaves(self):
        self.fail_handshake("127.0.0.9")
        # A sender that insists on TLS: STARTTLS is not offered, it quits.
        code, out = swaks(self.port(), "127.0.0.9", "--tls")
        self.assertNotEqual(code, 0, out)
        self.assertIn("Host did not advertise STARTTLS", out)
        self.proxy.wait_log("event=starttls_memory_released client=127.0.0.9 "
                            "reason=left_without_mail")
        # Its next attempt is offered STARTTLS again (and TLS 1.3 works).
        code, out = swaks(self.port(), "127.0.0.9", "--tls")
        self.assertEqual(code, 0, out)
        self.sink.wait_messages(1)

    def test_a_remembered_sender_that_delivers_in_plaintext_stays_remembered(self):
        self.fail_handshake("127.0.0.10")
        code, out = tls12_sender(self.port(), "127.0.0.10")
        self.assertEqual(code, 0, out)
        self.sink.wait_messages(1)
        self.end_line("127.0.0.10", "starttls=withheld")
        self.assertNotIn("event=starttls_memory_released", self.proxy.log())
        code, out, err = self.memory_cli("list")
        self.assertIn("127.0.0.10/32 ", out)


class HandshakeDeadlineTest(MemoryTest):
    tls_section = ""

    def make_proxy(self, **kw):
        p = super().make_proxy(**kw)
        p.extra += "\n[tls]\nhandshake_timeout = 1s\n"
        return p

    def test_silence_after_the_220_until_the_deadline_is_remembered(self):
        c, _ = self.ehlo("127.0.0.6")
        c.send(b"STARTTLS\r\n")
        self.assertTrue(c.read_reply().startswith(b"220 2.0.0"))
        self.proxy.wait_log("event=tls_failed client=127.0.0.6", timeout=15)
        self.assertRegex(self.proxy.log(), r"client=127\.0\.0\.6 listener=smtp mode=starttls "
                                           r"reason=handshake_timeout_no_client_hello "
                                           r"remembered=yes")
        self.assertFalse(self.offered("127.0.0.6"))


class TtlTest(MemoryTest):
    memory = {"ttl": "2s"}

    def test_starttls_is_offered_again_after_the_ttl(self):
        self.fail_handshake("127.0.0.2")
        self.assertFalse(self.offered("127.0.0.2"))
        for _ in range(60):  # bounded: 30 s for a 2 s TTL
            if self.offered("127.0.0.2"):
                break
            time.sleep(0.5)
        else:
            self.fail("STARTTLS never offered again after the TTL")
        code, out, err = self.memory_cli("list")
        self.assertEqual(code, 0, err)
        self.assertIn("0 entries", out)


class WorkersTest(MemoryTest):
    proxy_keys = {"workers": "4"}

    def test_a_failure_seen_by_one_worker_is_honoured_by_the_others(self):
        self.fail_handshake("127.0.0.2")
        failed = re.search(r"session=\S{8}(\S\S)\S+ event=tls_failed client=127\.0\.0\.2",
                           self.proxy.log()).group(1)
        seen = set()
        for _ in range(200):  # bounded; stops once other workers served it
            c, reply = self.ehlo("127.0.0.2")
            self.assertNotIn(b"STARTTLS", reply)
            c.close()
            for m in re.finditer(r"session=\S{8}(\S\S)\S+ event=starttls_withheld "
                                 r"client=127\.0\.0\.2", self.proxy.log()):
                seen.add(m.group(1))
            if seen - {failed}:
                break
        self.assertTrue(seen - {failed}, "only worker %s ever served the client" % failed)


class PersistenceTest(MemoryTest):
    memory = {"save_interval": "1s"}

    def state_file(self):
        return os.path.join(self.state_dir, "starttls-memory.state")

    def test_the_memory_survives_a_restart(self):
        self.fail_handshake("127.0.0.2")
        self.restart()
        self.assertRegex(self.proxy.log(), r"event=starttls_memory_loaded file=\S+ entries=1")
        self.assertFalse(self.offered("127.0.0.2"))
        self.assertTrue(self.offered("127.0.0.3"))
        code, out, err = self.memory_cli("list")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"127\.0\.0\.2/32 +\S+ +\S+ +\S+ +1 ")

    def test_the_state_file_is_written_at_the_interval_while_running(self):
        self.fail_handshake("127.0.0.2")
        for _ in range(100):  # bounded: 10 s for a 1 s interval
            if os.path.exists(self.state_file()) and "127.0.0.2/32" in read(self.state_file()):
                break
            time.sleep(0.1)
        else:
            self.fail("the state file never held the entry")
        self.assertEqual(stat.S_IMODE(os.stat(self.state_file()).st_mode), 0o600)
        self.assertEqual([f for f in os.listdir(self.state_dir) if ".tmp" in f], [])

    def test_a_corrupt_state_file_is_logged_and_ignored(self):
        self.proxy.stop()
        for junk in (b"\x00\x01garbage\n", b"smtp-tls-proxy starttls-memory 1\n127.0.0.2/32 x\n",
                     b"some other program's file\n"):
            with open(self.state_file(), "wb") as f:
                f.write(junk)
            self.proxy = self.make_proxy(name="proxy-%d" % len(junk))
            self.proxy.start()
            self.proxy.wait_log("event=starttls_memory_state_ignored")
            self.assertTrue(self.offered("127.0.0.2"))
            self.proxy.stop()
            self.proxy = None


class PrefixTest(MemoryTest):
    memory = {"ipv4_prefix": "24"}

    def test_two_addresses_in_one_slash_24_share_one_entry(self):
        self.fail_handshake("127.0.0.2")
        self.assertRegex(self.proxy.log(), r"remembered=yes key=127\.0\.0\.0/24")
        self.assertFalse(self.offered("127.0.0.3"))
        self.assertTrue(self.offered("127.0.1.3"))


class StaticListsTest(MemoryTest):

    def make_proxy(self, **kw):
        path = os.path.join(self.dir, "never.cidr")
        with open(path, "w") as f:
            f.write("# known broken senders\n127.0.3.0/24\n")
        return super().make_proxy(memory={"never_offer": path,
                                          "always_offer": "127.0.4.0/24, ::1"}, **kw)

    def test_never_offer_withholds_starttls_without_a_failure(self):
        self.assertFalse(self.offered("127.0.3.9"))
        self.assertRegex(self.proxy.log(), r"event=starttls_withheld client=127\.0\.3\.9 "
                                           r"listener=smtp reason=never_offer")
        self.assertTrue(self.offered("127.0.3.9", "submission"))

    def test_always_offer_is_never_remembered(self):
        self.fail_handshake("127.0.4.2")
        self.assertRegex(self.proxy.log(), r"client=127\.0\.4\.2 listener=smtp mode=starttls "
                                           r"reason=\S+ remembered=no")
        self.assertTrue(self.offered("127.0.4.2"))


class ControlTest(MemoryTest):

    def test_memory_list_shows_and_forget_removes_an_entry(self):
        self.fail_handshake("127.0.0.2")
        self.fail_handshake("127.0.0.3")
        code, out, err = self.memory_cli("list")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"(?m)^key +reason +first_seen +last_seen +count +expires")
        row = re.search(r"(?m)^127\.0\.0\.2/32 +(\S+) +(\S+) +(\S+) +(\d+) +(\S+)", out)
        self.assertIsNotNone(row, out)
        self.assertRegex(row.group(2), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(row.group(4), "1")
        self.assertIn("2 entries", out)
        code, out, err = self.memory_cli("forget", "127.0.0.2")
        self.assertEqual(code, 0, err)
        self.assertIn("forgot 1", out)
        self.assertTrue(self.offered("127.0.0.2"))
        self.assertFalse(self.offered("127.0.0.3"))
        code, out, err = self.memory_cli("forget", "all")
        self.assertEqual(code, 0, err)
        self.assertTrue(self.offered("127.0.0.3"))
        code, out, err = self.memory_cli("frobnicate")
        self.assertNotEqual(code, 0)

    def test_the_control_socket_is_0600_and_refuses_other_users(self):
        self.assertTrue(stat.S_ISSOCK(os.stat(self.socket_path).st_mode))
        self.assertEqual(stat.S_IMODE(os.stat(self.socket_path).st_mode), 0o600)
        if os.geteuid() != 0:
            return  # only root can act as another user; the mode is what keeps them out
        os.chmod(self.proxy.conf_path, 0o644)
        os.chmod(self.proxy.workdir, 0o755)
        code, out, err = self.memory_cli("list", user=65534)
        self.assertEqual(code, 2, out + err)
        self.assertIn("ermission denied", err)

    def test_a_second_proxy_cannot_take_a_live_control_socket_and_runs_without_it(self):
        other = self.make_proxy(name="other", metrics_port=free_port())
        other.start()  # its own free listener ports
        self.addCleanup(other.stop)
        other.wait_log("event=control_unavailable socket=%s" % self.socket_path)
        self.assertIn("in use by another process", other.log())
        # Both still serve mail, and the first still answers on the socket.
        self.assertTrue(self.offered("127.0.0.2"))
        code, out, err = self.memory_cli("list")
        self.assertEqual(code, 0, err)

    def test_the_peer_credentials_are_checked_even_on_an_open_socket(self):
        if os.geteuid() != 0:
            return  # only root can act as another user
        os.chmod(self.socket_path, 0o666)  # only SO_PEERCRED stands in the way now
        os.chmod(self.proxy.conf_path, 0o644)
        os.chmod(self.proxy.workdir, 0o755)
        code, out, err = self.memory_cli("list", user=65534)
        self.assertEqual(code, 1, out + err)
        self.assertIn("permission denied", err)
        self.proxy.wait_log("event=control_refused uid=65534")


class BoundTest(MemoryTest):
    memory = {"max_entries": "10000"}
    start_proxy = False

    def rss_kib(self, pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def test_ten_thousand_entries_stay_within_their_memory_bound(self):
        now = int(time.time())
        lines = ["smtp-tls-proxy starttls-memory 1"]
        n = 12000
        for i in range(n):
            lines.append("10.%d.%d.%d/32 %d %d %d 1 SSL:_NO_SHARED_CIPHER"
                         % (i >> 16, (i >> 8) & 255, i & 255, now - n + i, now - n + i,
                            now + 86400))
        lines.append("end %d" % n)
        empty = self.make_proxy(binary=PLAIN_PROXY_BIN, name="empty")
        empty.start()
        base = self.rss_kib(empty.proc.pid)
        empty.stop()
        with open(os.path.join(self.state_dir, "starttls-memory.state"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proxy = self.make_proxy(binary=PLAIN_PROXY_BIN, name="full")
        self.proxy.start()
        self.addCleanup(self.stop_proxy)
        self.proxy.wait_log("event=starttls_memory_loaded")
        self.assertRegex(self.proxy.log(), r"event=starttls_memory_loaded file=\S+ entries=\d+")
        self.assertEqual(self.metric("starttls_memory_entries"), 10000)
        self.assertEqual(self.metric("starttls_memory_max_entries"), 10000)
        grown = self.rss_kib(self.proxy.proc.pid) - base
        # The table's documented bound for 10,000 entries is under 2 MiB;
        # reading the 12,000-line file costs about as much again, once.
        self.assertLess(grown, 4096, "RSS grew by %d KiB" % grown)
        # The least recently used (the oldest 2,000) were dropped.
        code, out, err = self.memory_cli("list")
        self.assertNotIn("10.0.0.0/32 ", out)
        self.assertIn("10.0.46.223/32 ", out)  # entry 11999
        self.assertIn("10000 entries", out)


class EvictionTest(MemoryTest):
    memory = {"max_entries": "50"}

    def test_real_failures_beyond_the_bound_evict_the_least_recently_used(self):
        for i in range(60):
            src = "127.0.9.%d" % (i + 1)
            c, reply = self.ehlo(src)
            c.send(b"STARTTLS\r\n")
            self.assertTrue(c.read_reply().startswith(b"220"))
            c.close()
        for _ in range(200):
            if self.proxy.log().count("event=tls_failed") >= 60:
                break
            time.sleep(0.05)
        self.assertEqual(self.metric("starttls_memory_entries"), 50)
        self.assertEqual(self.metric("starttls_memory_evictions_total"), 10)
        self.assertTrue(self.offered("127.0.9.1"))
        self.assertFalse(self.offered("127.0.9.60"))


if __name__ == "__main__":
    unittest.main()

"""Several backends (issue 13, part 3): [backend] address as a list,
balance = failover | round-robin, down_time, max_tries.

Real backends: Postfix's smtp-sink and a real Postfix relaying to a sink.
The faults: a sink that was stopped (connection refused), a socket that
accepts and never greets (the one scripted peer: no MTA does that on
demand), an smtp-sink that greets 421 (-Q CONNECT) and one that hangs up
at DATA (-q DATA, a backend failing after the greeting).

Every message carries a unique Message-ID; every test counts sessions
sent, delivered (found at the final sinks, each exactly once) and failed
(what the client was told), and prints the figures.
"""
import collections
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import tempfile
import threading
import time
import unittest
import urllib.request

from fakebackend import ScriptedBackend, legacy_mta, read_line
from peers import PostfixInstance, SmtpSink, free_port
from proxyproc import Proxy, SmtpConversation
from tlsharness import CA, STANDARD_CERTIFICATES

FAST = {"connect_timeout": "2s", "greeting_timeout": "2s"}
NO_DNS = "\n[dns]\nreverse_lookup = no\n"
SEND_TIMEOUT = 60


def never_greets(conn, received):
    """Accepts and says nothing, until the proxy gives up and closes."""
    for _ in range(1000):
        data = conn.recv(4096)  # the harness's 10 s socket timeout bounds it
        if not data:
            return
        received.append(data)


def proxy_header_then_close(conn, received):
    """Takes the PROXY v1 line, then hangs up without a greeting."""
    read_line(conn, received)


class UnixBacklogBackend(ScriptedBackend):
    """An MTA on an AF_UNIX socket whose listen backlog (0) is full: one
    connection of its own waits unaccepted in it, so a non-blocking
    connect gets EAGAIN until open() takes that one and starts serving
    (legacy_mta, recording into |record|)."""

    def __init__(self, path, record):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(0)
        super().__init__(legacy_mta(record), sock=sock)
        self.path = path
        self.filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.filler.settimeout(10)
        self.filler.connect(path)  # the backlog's one place
        self.started = False

    def open(self):
        """Frees the backlog before returning: the filler's connection is
        taken off the queue here, not by the serving thread later (a
        client sent right after open() would otherwise race it)."""
        self.filler.close()
        self.sock.settimeout(10)
        conn, _ = self.sock.accept()
        conn.close()
        self.sock.settimeout(0.2)
        self.started = True
        self.start()

    def stop(self):
        self.filler.close()
        if self.started:
            super().stop()
        else:
            self.sock.close()


def message(tag, n):
    msgid = "<%s-%d@src.test>" % (tag, n)
    return msgid, ("From: a@src.test\r\nTo: b@dst.test\r\nMessage-ID: %s\r\n"
                   "Subject: %s %d\r\n\r\nbody %d\r\n" % (msgid, tag, n, n)).encode()


def tls_context():
    ctx = ssl.create_default_context(cafile=CA)
    ctx.check_hostname = False
    return ctx


def send(port, tag, n, source=None, starttls=False):
    """One session, one message (from |source|, an address of the
    loopback net). Returns (message-id, None) when the proxy said 250,
    else (message-id, the reply code or error)."""
    msgid, body = message(tag, n)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=SEND_TIMEOUT,
                          source_address=(source, 0) if source else None) as s:
            s.ehlo("client.src.test")
            if starttls:
                s.starttls(context=tls_context())
                s.ehlo("client.src.test")
            s.sendmail("a@src.test", ["b@dst.test"], body)
            try:
                s.quit()
            except smtplib.SMTPServerDisconnected:
                pass
        return msgid, None
    except smtplib.SMTPResponseException as e:
        return msgid, e.smtp_code
    except (smtplib.SMTPException, OSError) as e:
        return msgid, type(e).__name__


def send_all(port, tag, numbers, parallel=4, source=None, starttls=False):
    """Sends one session per number, |parallel| at a time; returns
    {message-id: None or what failed} (bounded: each session times out)."""
    results, lock = {}, threading.Lock()
    todo = list(numbers)

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop(0)
            msgid, err = send(port, tag, n, source, starttls)
            with lock:
                results[msgid] = err

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SEND_TIMEOUT * (len(numbers) + 1))
        if t.is_alive():
            raise AssertionError("a sender did not finish")
    return results


def delivered_ids(*sinks):
    """Message-IDs found at the sinks, with how often each was seen."""
    ids = collections.Counter()
    for sink in sinks:
        for m in sink.parsed_messages():
            ids[m["message"]["Message-ID"]] += 1
    return ids


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'(smtp_tls_proxy_backend_\w+)\{(.*)\} (\S+)$', line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2))))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    return ms.get((name, tuple(sorted(labels.items()))), 0)


def report(test, fault, sent, delivered, failed, extra=""):
    print("\n  [%s] %s: sessions sent=%d delivered=%d failed=%d%s"
          % (test, fault, sent, delivered, failed, extra), flush=True)


class BackendsTest(unittest.TestCase):
    """Each test builds its own backends and proxy under one directory."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-backends-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def sink(self, name, extra_args=(), port=None):
        s = SmtpSink(os.path.join(self.dir, name), extra_args=extra_args, port=port).start()
        self.addCleanup(s.stop)
        return s

    def stopped_sink(self, name):
        """A real smtp-sink that ran and was stopped: its port refuses."""
        s = self.sink(name)
        s.stop()
        return s

    def scripted(self, handler):
        b = ScriptedBackend(handler).start()
        self.addCleanup(b.stop)
        return b

    def postfix(self, relay, main_cf=None, name="postfix"):
        mta = PostfixInstance(os.path.join(self.dir, name), relayhost=relay,
                              main_cf=main_cf).start()
        self.addCleanup(mta.stop)
        return mta

    def proxy(self, backends, backend_keys, proxy_keys=None, extra=NO_DNS, listeners=None,
              name="proxy", nofile=None):
        keys = dict(FAST)
        keys.update(proxy_keys or {})
        pdir = os.path.join(self.dir, name)
        os.makedirs(pdir, exist_ok=True)
        p = Proxy(pdir, ", ".join(backends), proxy=keys, backend_keys=backend_keys,
                  extra=extra, listeners=listeners, nofile=nofile).start()
        self.addCleanup(p.stop)
        return p

    def test_failover_past_stopped_blackholed_and_421_backends_to_postfix(self):
        final = self.sink("final")
        mta = self.postfix(final, main_cf={"smtpd_authorized_xclient_hosts": "127.0.0.0/8"})
        stopped = self.stopped_sink("stopped")
        hole = self.scripted(never_greets)
        busy = self.sink("busy", extra_args=("-Q", "CONNECT"))
        targets = ["127.0.0.1:%d" % stopped.port, hole.address(), "127.0.0.1:%d" % busy.port,
                   "127.0.0.1:%d" % mta.smtpd_port]
        mport = free_port()
        # down_time 1s: the failed backends are tried again and again
        # during the run, so failover happens many times, not once.
        p = self.proxy(targets, {"identity": "xclient", "max_tries": "4", "down_time": "1s"},
                       extra=NO_DNS + "\n[metrics]\naddress = 127.0.0.1:%d\n" % mport)
        results = send_all(p.port(), "failover", range(50), source="127.0.0.2")
        failed = {k: v for k, v in results.items() if v is not None}
        ids = delivered_ids(final)
        for _ in range(600):  # Postfix relays to the sink on its own time
            if sum(ids.values()) >= 50:
                break
            final.wait_messages(sum(ids.values()) + 1, timeout=60)
            ids = delivered_ids(final)
        mta.wait_queue_empty()
        ids = delivered_ids(final)
        log = p.log()
        reasons = collections.Counter(re.findall(r"event=backend_failover backend=\S+ reason=(\w+)",
                                                 log))
        report("failover", "stopped + blackholed + 421 before a real Postfix", len(results),
               sum(ids.values()), len(failed), " failovers=%s" % dict(reasons))
        self.assertEqual(failed, {})
        self.assertEqual(set(ids), set(results), "lost or foreign messages")
        self.assertEqual([k for k, v in ids.items() if v != 1], [], "duplicated")
        for why in ("refused", "timeout", "greeting_4xx"):
            self.assertGreater(reasons[why], 0, "no failover for %s:\n%s" % (why, log))
        self.assertIn("event=backend_down backend=127.0.0.1:%d reason=refused until=" % stopped.port,
                      log)
        self.assertIn("next=127.0.0.1:%d" % mta.smtpd_port, log)
        # XCLIENT went to Postfix after the failovers: it saw the client.
        self.assertIn("client=unknown[127.0.0.2]", mta.maillog())
        ms = metrics(mport)
        self.assertGreaterEqual(metric(ms, "smtp_tls_proxy_backend_failures_total",
                                       backend=targets[0], reason="refused"), 1)
        self.assertGreaterEqual(metric(ms, "smtp_tls_proxy_backend_failures_total",
                                       backend=targets[1], reason="timeout"), 1)
        self.assertGreaterEqual(metric(ms, "smtp_tls_proxy_backend_failures_total",
                                       backend=targets[2], reason="greeting_4xx"), 1)
        self.assertGreaterEqual(metric(ms, "smtp_tls_proxy_backend_connects_total",
                                       backend=targets[3]), 50)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_failures_total",
                                backend=targets[3], reason="refused"), 0)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_up", backend=targets[3]), 1)

    def test_round_robin_spreads_messages_across_two_sinks(self):
        a = self.sink("a")
        b = self.sink("b")
        # The second by name: localhost resolves through /etc/hosts.
        targets = ["127.0.0.1:%d" % a.port, "localhost:%d" % b.port]
        mport = free_port()
        p = self.proxy(targets, {"balance": "round-robin"},
                       extra=NO_DNS + "\n[metrics]\naddress = 127.0.0.1:%d\n" % mport)
        results = send_all(p.port(), "rr", range(40), parallel=1)
        failed = {k: v for k, v in results.items() if v is not None}
        a.wait_messages(1)
        b.wait_messages(1)
        ids_a, ids_b = delivered_ids(a), delivered_ids(b)
        both = ids_a + ids_b
        report("round-robin", "two sinks, 40 sequential sessions", len(results),
               sum(both.values()), len(failed),
               " first=%d second=%d" % (sum(ids_a.values()), sum(ids_b.values())))
        self.assertEqual(failed, {})
        self.assertEqual(set(both), set(results))
        self.assertEqual([k for k, v in both.items() if v != 1], [])
        # One rotation: consecutive sessions alternate, whatever the
        # harness's start-up probe took.
        self.assertEqual(sum(ids_a.values()), 20)
        self.assertEqual(sum(ids_b.values()), 20)
        ms = metrics(mport)
        self.assertGreaterEqual(metric(ms, "smtp_tls_proxy_backend_connects_total",
                                       backend="localhost:%d@127.0.0.1" % b.port), 20)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_up",
                                backend="localhost:%d@127.0.0.1" % b.port), 1)

    def test_all_backends_down_gives_a_clean_421_and_the_retry_delivers_once(self):
        stopped = self.stopped_sink("stopped")
        hole = self.scripted(never_greets)
        busy = self.sink("busy", extra_args=("-Q", "CONNECT"))
        targets = ["127.0.0.1:%d" % stopped.port, hole.address(), "127.0.0.1:%d" % busy.port]
        p = self.proxy(targets, {"max_tries": "3", "down_time": "1s"})
        # Raw clients first: the reply is a 421 and the connection closes.
        for _ in range(3):
            with SmtpConversation("127.0.0.1", p.port(), timeout=SEND_TIMEOUT) as c:
                reply = c.read_reply()
                self.assertTrue(reply.startswith(b"421 "), reply)
                self.assertEqual(c.read_until_eof(), b"")
        results = send_all(p.port(), "alldown", range(10))
        failed = {k: v for k, v in results.items() if v is not None}
        report("all down", "stopped + blackholed + 421, first attempts", len(results), 0,
               len(failed), " replies=%s" % dict(collections.Counter(failed.values())))
        self.assertEqual(sorted(set(failed.values())), [421], failed)
        self.assertEqual(len(failed), 10)
        self.assertIn("event=fail reason=backend_", p.log())
        # The stopped backend comes back: the senders retry (as MTAs do
        # after a 421) and every message arrives exactly once.
        back = stopped.start()  # the same smtp-sink, on its port again
        pending = sorted(failed)
        numbers = {message("alldown", n)[0]: n for n in range(10)}
        attempts = 0
        for _ in range(40):
            if not pending:
                break
            attempts += 1
            retry = send_all(p.port(), "alldown", [numbers[m] for m in pending])
            pending = sorted(k for k, v in retry.items() if v is not None)
        ids = delivered_ids(back, busy)
        report("all down", "after the stopped backend came back (%d retry rounds)" % attempts,
               len(results), sum(ids.values()), len(pending))
        self.assertEqual(pending, [])
        self.assertEqual(set(ids), set(results))
        self.assertEqual([k for k, v in ids.items() if v != 1], [])

    def test_backend_failing_after_the_greeting_is_not_replaced(self):
        dies = self.sink("dies", extra_args=("-q", "DATA"))
        spare = self.sink("spare")
        targets = ["127.0.0.1:%d" % dies.port, "127.0.0.1:%d" % spare.port]
        p = self.proxy(targets, {})
        results = send_all(p.port(), "late", range(5), parallel=1)
        failed = {k: v for k, v in results.items() if v is not None}
        report("late failure", "backend hangs up at DATA", len(results),
               sum(delivered_ids(dies, spare).values()), len(failed))
        # The session fails as with one backend; the spare never hears of it.
        self.assertEqual(sorted(set(failed.values())), [421], failed)
        self.assertEqual(len(failed), 5)
        self.assertEqual(delivered_ids(dies, spare), collections.Counter())
        self.assertNotIn("event=backend_failover", p.log())
        self.assertIn("event=backend_closed", p.log())
        # Once that backend is gone, new sessions fail over before their
        # greeting: the senders' retries arrive, once each.
        dies.stop()
        retry = send_all(p.port(), "late", range(5), parallel=1)
        ids = delivered_ids(spare)
        report("late failure", "retry after that backend stopped", len(retry),
               sum(ids.values()), len([v for v in retry.values() if v is not None]))
        self.assertEqual({k: v for k, v in retry.items() if v is not None}, {})
        self.assertEqual(set(ids), set(results))
        self.assertEqual([k for k, v in ids.items() if v != 1], [])
        self.assertIn("event=backend_failover backend=127.0.0.1:%d reason=refused" % dies.port,
                      p.log())

    def test_identity_and_greet_wait_go_to_every_target_tried(self):
        """pregreet = reject (GREET_WAIT) and PROXY v1 to the backend: the
        header goes to the first target, which hangs up before greeting,
        and again to the one after it."""
        final = self.sink("final")
        mta = self.postfix(final, main_cf={"smtpd_upstream_proxy_protocol": "haproxy"})
        first = self.scripted(proxy_header_then_close)
        targets = [first.address(), "127.0.0.1:%d" % mta.smtpd_port]
        # down_time 10ms: every session tries the scripted backend first.
        p = self.proxy(targets, {"identity": "proxy-v1", "down_time": "10ms"},
                       proxy_keys={"pregreet": "reject", "pregreet_wait": "200ms"})
        results = send_all(p.port(), "identity", range(5), parallel=1, source="127.0.0.2")
        failed = {k: v for k, v in results.items() if v is not None}
        final.wait_messages(5, timeout=60)
        mta.wait_queue_empty()
        ids = delivered_ids(final)
        report("identity", "PROXY v1 + GREET_WAIT, hang-up then Postfix", len(results),
               sum(ids.values()), len(failed))
        self.assertEqual(failed, {})
        self.assertEqual(set(ids), set(results))
        self.assertEqual([k for k, v in ids.items() if v != 1], [])
        headers = [l for l in first.received if l.startswith(b"PROXY TCP4 127.0.0.2 127.0.0.1 ")]
        self.assertGreaterEqual(len(headers), 5, first.received)
        self.assertIn("client=unknown[127.0.0.2]", mta.maillog())
        self.assertGreaterEqual(p.log().count("reason=closed next=127.0.0.1:%d"
                                              % mta.smtpd_port), 5)

    def test_proxy_v2_backend_per_client_421_is_relayed_and_backend_stays_up(self):
        """Postfix behind PROXY v2 knows the client before it greets: its
        anvil limit's 421 for one client is policy, relayed as it is. The
        target stays up and the next client is served by the same Postfix,
        although the other backend is stopped (a mark-down would leave no
        target up, and every client a 421)."""
        final = self.sink("final")
        mta = self.postfix(final, main_cf={"smtpd_upstream_proxy_protocol": "haproxy",
                                           "smtpd_client_connection_count_limit": "1",
                                           "smtpd_client_event_limit_exceptions": ""})
        stopped = self.stopped_sink("stopped")
        targets = ["127.0.0.1:%d" % stopped.port, "127.0.0.1:%d" % mta.smtpd_port]
        mport = free_port()
        p = self.proxy(targets, {"identity": "proxy-v2"},
                       extra=NO_DNS + "\n[metrics]\naddress = 127.0.0.1:%d\n" % mport)
        # One session of 127.0.0.2 is open at Postfix...
        first = SmtpConversation("127.0.0.1", p.port(), timeout=SEND_TIMEOUT,
                                 source="127.0.0.2")
        self.addCleanup(first.close)
        self.assertTrue(first.read_reply().startswith(b"220 "))
        # ...so Postfix refuses a second one of that client: relayed.
        with SmtpConversation("127.0.0.1", p.port(), timeout=SEND_TIMEOUT,
                              source="127.0.0.2") as second:
            reply = second.read_reply()
            self.assertTrue(reply.startswith(b"421 4.7.0 "), reply)
            self.assertIn(b"too many connections from 127.0.0.2", reply)
            self.assertEqual(second.read_until_eof(), b"")
        # Another client is served by the same Postfix, at once.
        msgid, err = send(p.port(), "perclient", 1, source="127.0.0.3")
        self.assertIsNone(err, p.log())
        p.wait_log("event=backend_refused_client backend=%s code=421" % targets[1])
        final.wait_messages(1, timeout=60)
        mta.wait_queue_empty()
        self.assertEqual(delivered_ids(final), collections.Counter({msgid: 1}))
        self.assertIn("client=unknown[127.0.0.3]", mta.maillog())
        first.send(b"QUIT\r\n")
        self.assertTrue(first.read_reply().startswith(b"221"))
        log = p.log()
        report("per-client 421", "PROXY v2 Postfix anvil limit, other backend stopped", 3, 1, 1)
        self.assertNotIn("event=backend_down backend=%s " % targets[1], log)
        self.assertNotIn("event=backend_failover backend=%s " % targets[1], log)
        ms = metrics(mport)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_up", backend=targets[1]), 1)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_failures_total",
                                backend=targets[1], reason="greeting_4xx"), 0)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_up", backend=targets[0]), 0)

    def test_last_backend_refusing_the_proxy_gives_the_proxys_own_421(self):
        """Without an identity before the greeting (none, xclient) a 4xx/5xx
        greeting refuses the proxy, not the client: the target is marked
        down, and when it was the last one the client hears the proxy's
        "backend unavailable", never the backend's 5xx (a bounce)."""
        stopped = self.stopped_sink("stopped")
        cases = [("none", self.sink("hard", extra_args=("-f", "CONNECT")), "greeting_5xx"),
                 ("xclient", self.sink("busy", extra_args=("-Q", "CONNECT")), "greeting_4xx")]
        for identity, refusing, reason in cases:
            with self.subTest(identity=identity):
                targets = ["127.0.0.1:%d" % stopped.port, "127.0.0.1:%d" % refusing.port]
                p = self.proxy(targets, {"identity": identity}, name="proxy-" + identity)
                with SmtpConversation("127.0.0.1", p.port(), timeout=SEND_TIMEOUT) as c:
                    self.assertEqual(c.read_reply(), b"421 4.4.1 mx.example.test Mail backend "
                                                     b"unavailable, try again later\r\n")
                    self.assertEqual(c.read_until_eof(), b"")
                log = p.wait_log("event=fail reason=backend_unavailable")
                self.assertIn("event=backend_failover backend=%s reason=refused next=%s"
                              % (targets[0], targets[1]), log)
                self.assertIn("event=backend_down backend=%s reason=%s until=" % (targets[1], reason),
                              log)
                self.assertNotIn("event=backend_refused_client", log)
                p.stop()

    def test_full_unix_backlog_fails_only_the_session_and_the_backend_stays_up(self):
        """EAGAIN from connect(2) on an AF_UNIX backend is its backlog,
        full for now: that session gets 421 4.3.0; the target is neither
        marked down nor failed over from, and serves the next client."""
        record = {}
        path = os.path.join(self.dir, "mta.sock")
        mta = UnixBacklogBackend(path, record)
        self.addCleanup(mta.stop)
        spare = self.sink("spare")
        targets = [path, "127.0.0.1:%d" % spare.port]
        mport = free_port()
        p = self.proxy(targets, {}, extra=NO_DNS + "\n[metrics]\naddress = 127.0.0.1:%d\n" % mport)
        with SmtpConversation("127.0.0.1", p.port(), timeout=SEND_TIMEOUT) as c:
            reply = c.read_reply()
            self.assertTrue(reply.startswith(b"421 4.3.0 mx.example.test "), reply)
            self.assertEqual(c.read_until_eof(), b"")
        log = p.wait_log("event=backend_connect_local_error backend=%s" % path)
        self.assertIn('error="Resource temporarily unavailable"', log)
        mta.open()
        msgid, err = send(p.port(), "backlog", 1)
        self.assertIsNone(err, p.log())
        self.assertEqual(len(record["messages"]), 1)
        self.assertIn(msgid.encode(), record["messages"][0])
        self.assertEqual(spare.messages(), [])
        log = p.log()
        report("unix backlog", "full AF_UNIX backlog, then served", 2, 1, 1)
        self.assertNotIn("event=backend_down", log)
        self.assertNotIn("event=backend_failover", log)
        ms = metrics(mport)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_up", backend=path), 1)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_failures_total",
                                backend=path, reason="refused"), 0)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_connects_total",
                                backend=targets[1]), 0)

    def test_no_descriptor_for_the_backend_fails_only_the_session(self):
        """EMFILE when the backend socket is made is the proxy's own
        shortage: that session gets 421 4.3.0, the backend is not marked
        down, and once descriptors are free it serves the next client.
        Sessions waiting for a load balancer's PROXY header hold one
        descriptor each: they use up the limit, the last one accepted
        takes the last descriptor (the accept after it fails, and the
        worker pauses accepting), and its backend socket finds none."""
        backend = self.sink("backend")
        listener = {"name": "smtp", "kind": "smtp", "proxy_protocol": "v1",
                    "proxy_trusted": "127.0.0.1"}
        p = self.proxy(["127.0.0.1:%d" % backend.port], {},
                       proxy_keys={"workers": "1", "proxy_protocol_timeout": "120s"},
                       listeners=[listener], nofile=40)
        held = []
        self.addCleanup(lambda: [h.close() for h in held])
        last = None  # the connection accepted last
        for _ in range(64):  # fewer than 40 descriptors to take
            seen = p.log().count("event=connect client=")
            c = socket.create_connection(("127.0.0.1", p.port()), timeout=SEND_TIMEOUT)
            held.append(c)
            for _ in range(400):
                log = p.log()
                if "event=accept_paused" in log or log.count("event=connect client=") > seen:
                    break
                time.sleep(0.05)
            # One accept's "event=connect" is logged before the failing
            # accept after it: once the pause shows, so has that line.
            if log.count("event=connect client=") > seen:
                last = c
            if "event=accept_paused" in log:
                break
        self.assertIn("event=accept_paused", log, "the descriptor limit was never reached")
        self.assertIsNotNone(last)
        last.sendall(b"PROXY TCP4 127.0.0.5 127.0.0.1 40000 25\r\n")
        reply = b""
        for _ in range(100):  # the 421, then the proxy closes
            chunk = last.recv(4096)
            if not chunk:
                break
            reply += chunk
        self.assertTrue(reply.startswith(b"421 4.3.0 mx.example.test "), reply)
        log = p.wait_log("event=backend_connect_local_error")
        self.assertIn('error="Too many open files"', log)
        self.assertNotIn("event=backend_down", log)
        for h in held:
            h.close()
        held.clear()
        # Descriptors are free again: the same backend serves a client.
        c = None
        for _ in range(100):
            c = SmtpConversation("127.0.0.1", p.port(), timeout=SEND_TIMEOUT)
            c.send(b"PROXY TCP4 127.0.0.6 127.0.0.1 40001 25\r\n")
            reply = c.read_reply()
            if reply.startswith(b"220"):
                break
            c.close()
            time.sleep(0.1)
        self.addCleanup(c.close)
        self.assertTrue(reply.startswith(b"220"), reply)
        c.send(b"EHLO client.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        msgid, body = message("nofd", 1)
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"354"])
        c.send(body + b".\r\nQUIT\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        backend.wait_messages(1)
        self.assertEqual(delivered_ids(backend), collections.Counter({msgid: 1}))
        report("no descriptor", "EMFILE at the backend socket, then served", 2, 1, 1)
        self.assertNotIn("event=backend_down", p.log())


    def test_after_starttls_the_session_stays_with_the_backend_that_greeted(self):
        """Round-robin would hand the connection opened after STARTTLS to
        the other sink; it goes to the target that served the session."""
        a = self.sink("a")
        b = self.sink("b")
        targets = ["127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port]
        p = self.proxy(targets, {"balance": "round-robin"}, proxy_keys={"log_level": "debug"},
                       extra=NO_DNS + STANDARD_CERTIFICATES,
                       listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"}])
        results = send_all(p.port(), "tls", range(10), parallel=2, starttls=True)
        failed = {k: v for k, v in results.items() if v is not None}
        a.wait_messages(1)
        b.wait_messages(1)
        connects = collections.defaultdict(list)
        for sid, backend, tries in re.findall(
                r"session=(\w+) event=backend_connect backend=(\S+) try=(\d+)", p.log()):
            connects[sid].append((backend, int(tries)))
        checked = 0
        for sink, target in ((a, targets[0]), (b, targets[1])):
            for m in sink.parsed_messages():
                ours = [r for r in m["message"].get_all("Received") if "smtp-tls-proxy" in r]
                sid = re.search(r"\bid ([0-9a-f]+)-1\b", ours[0]).group(1)
                # before TLS and after it: the same backend, the one that
                # got the message
                self.assertEqual(connects[sid], [(target, 1), (target, 2)], connects[sid])
                checked += 1
        ids = delivered_ids(a, b)
        report("starttls", "round-robin, STARTTLS sessions", len(results), sum(ids.values()),
               len(failed), " first=%d second=%d" % (len(a.messages()), len(b.messages())))
        self.assertEqual(failed, {})
        self.assertEqual(checked, 10)
        self.assertEqual(set(ids), set(results))
        self.assertEqual([k for k, v in ids.items() if v != 1], [])


    def test_reload_changes_the_list_and_keeps_what_it_knew(self):
        stopped = self.stopped_sink("stopped")
        a = self.sink("a")
        b = self.sink("b")
        mport = free_port()
        metrics_section = "\n[metrics]\naddress = 127.0.0.1:%d\n" % mport
        first = ["127.0.0.1:%d" % stopped.port, "127.0.0.1:%d" % a.port]
        p = self.proxy(first, {"down_time": "1h"}, extra=NO_DNS + metrics_section)
        results = send_all(p.port(), "reload", range(3), parallel=1)
        self.assertEqual([v for v in results.values() if v is not None], [])
        self.assertEqual(metric(metrics(mport), "smtp_tls_proxy_backend_up", backend=first[0]), 0)

        def reload(backends, result):
            p.backend = ", ".join(backends)
            for l in p.listeners:
                l["port"] = p.ports[l["name"]]
            with open(p.conf_path, "w") as f:
                f.write(p.config_text())
            done = p.log().count("event=reload result=")
            p.signal(signal.SIGHUP)
            for _ in range(1200):  # a name lookup may take the resolver's time
                if p.log().count("event=reload result=") > done:
                    break
                time.sleep(0.05)
            self.assertEqual(re.findall(r"event=reload result=(\w+)", p.log())[done:], [result])

        # A name that does not resolve: the reload fails, naming the line.
        reload(first + ["no-such-host.invalid:25"], "failed")
        self.assertRegex(p.log(), r"proxy\.conf:\d+: backend no-such-host\.invalid:25: "
                                  r"cannot resolve no-such-host\.invalid")
        # A third backend, by name; the stopped one stays down (what the
        # pool knew survives), and a's counters go on.
        third = "localhost:%d" % b.port
        reload(first + [third], "ok")
        ms = metrics(mport)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_up", backend=first[0]), 0)
        self.assertGreaterEqual(metric(ms, "smtp_tls_proxy_backend_connects_total",
                                       backend=first[1]), 3)
        self.assertEqual(metric(ms, "smtp_tls_proxy_backend_up",
                                backend=third + "@127.0.0.1"), 1)
        a.stop()
        more = send_all(p.port(), "reload", range(3, 6), parallel=1)
        ids_a, ids_b = delivered_ids(a), delivered_ids(b)
        report("reload", "stopped + a, then a stopped after a reload added b", 6,
               sum(ids_a.values()) + sum(ids_b.values()),
               len([v for v in list(results.values()) + list(more.values()) if v is not None]))
        self.assertEqual([v for v in more.values() if v is not None], [])
        self.assertEqual(set(ids_a), set(results))
        self.assertEqual(set(ids_b), set(more))
        self.assertEqual([k for k, v in (ids_a + ids_b).items() if v != 1], [])
        # The stopped backend was skipped after the reload (down for 1h);
        # the first session failed over from a, the next ones skipped it.
        tail = p.log().split("event=reload result=ok")[-1]
        self.assertNotIn("backend_failover backend=%s" % first[0], tail)
        # (localhost may also be ::1, where b does not listen: whichever
        # address of the name comes first, a fails over to it once.)
        self.assertEqual(tail.count("backend_failover backend=%s reason=refused next=%s@"
                                    % (first[1], third)), 1)


if __name__ == "__main__":
    unittest.main()

"""The STARTTLS failure memory shared by a fleet through a real
redis-server (issue 13 part 2, ARCHITECTURE.md §5.6): a failure seen by
proxy A makes proxy B withhold STARTTLS; Redis stopped, restarted or
answering slowly never fails a session (the local memory answers), and
its state shows in the logs, the metrics and /healthz.
"""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from peers import RedisServer, SmtpSink, free_port
from proxyproc import PROXY_BIN, Proxy, SmtpConversation
from tlsharness import MX_CERTIFICATES, TOOL_TIMEOUT

LISTENERS = (
    {"name": "smtp", "kind": "smtp", "tls": "starttls", "min_tls_version": "TLSv1.3"},
)


def tls12_sender(port, source):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                        "--local-interface", source, "--to", "b@dst.test", "--from", "a@src.test",
                        "--tls-optional-strict", "--tls-protocol", "tlsv1_2", "--timeout", "20"],
                       capture_output=True, timeout=TOOL_TIMEOUT)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


class FleetTest(unittest.TestCase):
    """One Redis, one smtp-sink, and proxies made by proxy()."""

    redis_timeout = "50ms"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-redis-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.redis = RedisServer(os.path.join(self.dir, "redis")).start()
        self.addCleanup(self.redis.stop)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)

    def proxy(self, name, redis=True, control=False):
        metrics_port = free_port()
        keys = {}
        if control:
            keys["control_socket"] = os.path.join(self.dir, name + ".sock")
        extra = MX_CERTIFICATES + "\n[metrics]\naddress = 127.0.0.1:%d\n" % metrics_port
        extra += "\n[starttls_memory]\nredis_timeout = %s\n" % self.redis_timeout
        if redis:
            extra += "redis = %s\n" % self.redis.address
        workdir = os.path.join(self.dir, name)
        os.makedirs(workdir)
        p = Proxy(workdir, "%s:%d" % self.sink.address, listeners=[dict(l) for l in LISTENERS],
                  extra=extra, proxy=keys)
        p.metrics_port = metrics_port
        p.start()
        self.addCleanup(p.stop)
        if redis:
            p.wait_log("event=redis_up worker=1")
            p.wait_log("event=redis_up worker=0")
        return p

    def offered(self, proxy, source):
        c = SmtpConversation("127.0.0.1", proxy.port(), source=source)
        try:
            self.assertTrue(c.read_reply().startswith(b"220"))
            c.send(b"EHLO sender.src.test\r\n")
            reply = c.read_reply()
            self.assertTrue(reply.startswith(b"250"), reply)
            c.send(b"QUIT\r\n")
            c.read_reply()
            return b"STARTTLS" in reply
        finally:
            c.close()

    def fetch(self, proxy, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (proxy.metrics_port, path),
                                    timeout=10) as r:
            return r.read().decode()

    def metric(self, proxy, line_re, at_least=None):
        """A metric's value; with |at_least|, waits (bounded) until it is:
        the Redis figures are gathered from the workers every second."""
        for _ in range(100):
            m = re.search(line_re, self.fetch(proxy, "/metrics"), re.M)
            if m and (at_least is None or float(m.group(1)) >= at_least):
                break
            time.sleep(0.1)
        self.assertIsNotNone(m, self.fetch(proxy, "/metrics"))
        return float(m.group(1))

    def wait_for(self, what, cond, timeout=20.0):
        for _ in range(int(timeout / 0.1)):
            if cond():
                return
            time.sleep(0.1)
        self.fail("never: " + what)


class SharedMemoryTest(FleetTest):

    def test_a_failure_seen_by_proxy_a_makes_proxy_b_withhold_starttls(self):
        a = self.proxy("a")
        b = self.proxy("b")
        self.assertTrue(self.offered(b, "127.0.0.2"))
        code, out = tls12_sender(a.port(), "127.0.0.2")
        self.assertNotEqual(code, 0, out)
        a.wait_log("event=tls_failed client=127.0.0.2 ")
        self.wait_for("the key in Redis", lambda: self.redis.command(
            "EXISTS", "smtp-tls-proxy:starttls:127.0.0.2/32") == b":1\r\n")
        ttl = int(self.redis.command("TTL", "smtp-tls-proxy:starttls:127.0.0.2/32")[1:])
        self.assertTrue(86000 < ttl <= 86400, ttl)
        # B never saw the failure; it withholds STARTTLS all the same, and
        # the sender's next attempt through B is delivered in plaintext.
        code, out = tls12_sender(b.port(), "127.0.0.2")
        self.assertEqual(code, 0, out)
        self.sink.wait_messages(1)
        self.assertRegex(b.log(), r"event=starttls_withheld client=127\.0\.0\.2 listener=smtp "
                                  r"reason=remembered key=127\.0\.0\.2/32 source=redis")
        self.assertNotIn("event=tls_failed", b.log())
        self.assertTrue(self.offered(b, "127.0.0.3"))
        self.assertGreaterEqual(self.metric(
            b, r'^smtp_tls_proxy_redis_lookups_total\{result="remembered"\} (\d+)$', 1), 1)
        self.assertIn("redis: up (2 of 2 connections up)", self.fetch(b, "/healthz"))

    def test_memory_forget_removes_the_fleet_entry_too(self):
        a = self.proxy("a", control=True)
        key = "smtp-tls-proxy:starttls:127.0.0.4/32"
        self.redis.command("SET", key, "reason=from_another_proxy", "EX", "600")
        self.assertFalse(self.offered(a, "127.0.0.4"))  # withheld: the fleet remembers
        r = subprocess.run([PROXY_BIN, "-c", a.conf_path, "memory", "forget", "127.0.0.4"],
                           capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_for("the key gone from Redis",
                      lambda: self.redis.command("EXISTS", key) == b":0\r\n")
        self.assertTrue(self.offered(a, "127.0.0.4"))


class RedisOutageTest(FleetTest):

    def send_continuously(self, proxy, stop, results):
        i = 0
        while not stop.is_set() and i < 2000:  # bounded
            i += 1
            try:
                s = smtplib.SMTP("127.0.0.1", proxy.port(), timeout=20,
                                 source_address=("127.0.0.%d" % (10 + i % 50), 0))
                s.ehlo("load.src.test")
                s.sendmail("a@src.test", ["b@dst.test"],
                           b"Subject: outage %d\r\nMessage-ID: <outage-%d@src.test>\r\n\r\nx\r\n"
                           % (i, i))
                s.quit()
                results.append(("ok", i))
            except Exception as e:  # noqa: BLE001 - every failure is counted
                results.append(("failed", "%d: %r" % (i, e)))

    def test_redis_stopped_and_restarted_under_traffic_fails_no_session(self):
        p = self.proxy("p")
        stop, results = threading.Event(), []
        t = threading.Thread(target=self.send_continuously, args=(p, stop, results))
        t.start()
        try:
            self.wait_for("traffic", lambda: len(results) >= 20)
            self.redis.stop()
            p.wait_log("event=redis_down")
            self.wait_for("healthz down", lambda: "redis: down" in self.fetch(p, "/healthz"))
            during = len(results)
            self.wait_for("traffic while down", lambda: len(results) >= during + 20)
            self.redis.start()
            self.wait_for("reconnected", lambda: p.log().count("event=redis_up") >= 4)
            after = len(results)
            self.wait_for("traffic after", lambda: len(results) >= after + 20)
        finally:
            stop.set()
            t.join(timeout=60)
        failed = [r for r in results if r[0] == "failed"]
        sent = len(results)
        self.assertEqual(failed, [], "sessions failed during the outage")
        self.wait_for("all delivered", lambda: len(self.sink.messages()) >= sent, timeout=30)
        ids = [re.search(rb"Message-ID: <(outage-\d+)@", m["data_crlf"]).group(1)
               for m in self.sink.parsed_messages()]
        self.assertEqual(len(ids), len(set(ids)), "duplicates")
        self.assertEqual(len(ids), sent)
        print("\nredis outage: sessions sent %d, delivered %d, failed %d"
              % (sent, len(ids), len(failed)))
        self.wait_for("healthz up", lambda: "redis: up" in self.fetch(p, "/healthz"))
        self.assertGreaterEqual(self.metric(p, r"^smtp_tls_proxy_redis_reconnects_total (\d+)$", 1), 1)

    def test_a_slow_redis_fails_no_session(self):
        p = self.proxy("p")
        self.redis.command("SET", "smtp-tls-proxy:starttls:127.0.0.7/32", "reason=test", "EX", "600")
        self.assertFalse(self.offered(p, "127.0.0.7"))  # remembered while Redis answers
        sleeper = threading.Thread(target=self.redis.command, args=("DEBUG", "SLEEP", "2"),
                                   kwargs={"timeout": 30})
        sleeper.start()
        try:
            time.sleep(0.2)  # Redis is asleep now (the test's setup, not an assertion)
            sent = 0
            for i in range(5):
                s = smtplib.SMTP("127.0.0.1", p.port(), timeout=20,
                                 source_address=("127.0.0.7", 0))
                s.ehlo("slow.src.test")
                s.sendmail("a@src.test", ["b@dst.test"], b"Subject: slow %d\r\n\r\nx\r\n" % i)
                s.quit()
                sent += 1
        finally:
            sleeper.join(timeout=30)
        self.sink.wait_messages(sent)
        self.assertEqual(len(self.sink.messages()), sent)
        self.assertGreaterEqual(self.metric(
            p, r'^smtp_tls_proxy_redis_lookups_total\{result="late"\} (\d+)$', 1), 1)
        print("\nslow redis: sessions sent %d, delivered %d, failed 0" % (sent, sent))


class ReloadTest(FleetTest):

    def reload(self, p, with_redis):
        with open(p.conf_path) as f:
            text = f.read()
        line = "redis = %s\n" % self.redis.address
        text = text.replace(line, "")
        if with_redis:
            text = text.replace("[starttls_memory]\n", "[starttls_memory]\n" + line)
        with open(p.conf_path, "w") as f:
            f.write(text)
        done = p.log().count("event=reload result=ok")
        p.signal(signal.SIGHUP)
        p.wait_log("event=reload result=ok")
        self.wait_for("the reload", lambda: p.log().count("event=reload result=ok") > done)

    def test_a_reload_that_adds_redis_lets_memory_forget_delete_the_fleet_entry(self):
        p = self.proxy("p", redis=False, control=True)
        self.reload(p, True)
        p.wait_log("event=redis_up worker=-1")
        key = "smtp-tls-proxy:starttls:127.0.0.8/32"
        self.redis.command("SET", key, "reason=test", "EX", "600")
        r = subprocess.run([PROXY_BIN, "-c", p.conf_path, "memory", "forget", "127.0.0.8"],
                           capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_for("the key gone from Redis",
                      lambda: self.redis.command("EXISTS", key) == b":0\r\n")

    def test_a_reload_that_removes_redis_shows_no_redis_down(self):
        p = self.proxy("p")
        self.reload(p, False)
        self.offered(p, "127.0.0.2")  # each worker follows the reload at its next accept
        self.offered(p, "127.0.0.3")
        self.wait_for("no redis in /healthz", lambda: self.fetch(p, "/healthz") == "ok\n")
        self.assertNotIn("redis: down", self.fetch(p, "/healthz"))


class NoRedisTest(FleetTest):

    def test_without_redis_nothing_about_it_is_shown(self):
        p = self.proxy("p", redis=False)
        self.assertEqual(self.fetch(p, "/healthz"), "ok\n")
        self.assertNotIn("redis", self.fetch(p, "/metrics"))


if __name__ == "__main__":
    unittest.main()

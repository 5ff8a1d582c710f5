"""smtp-load (tools/smtp-load), the load generator and sink make bench
drives: what it reports is what the other side received, through the
real proxy in every mode, TLS sessions resume, --idle holds and lets go,
and its sink survives what a proxy sends it (PROXY v2, XCLIENT, an end
of data split across reads). Behaviour only: no figure is asserted.
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from peers import SmtpSink
from proxyproc import ROOT, Proxy
from tlsharness import MX_CERTIFICATES

LOAD = os.path.join(ROOT, "build", "tools", "smtp-load")
RUN_TIMEOUT = 120


def setUpModule():
    if not os.access(LOAD, os.X_OK):
        subprocess.run(["make", "tools"], cwd=ROOT, check=True, capture_output=True,
                       timeout=300)


def run_load(*args, timeout=RUN_TIMEOUT):
    """smtp-load ARGS --json; returns (exit status, the report as a dict or
    None, stderr). The report is the last line (--idle prints idle-ready
    before it)."""
    out = subprocess.run([LOAD, "--json"] + [str(a) for a in args], capture_output=True,
                         timeout=timeout)
    lines = out.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith(b"{") else None
    return out.returncode, report, out.stderr.decode()


class LoadSink:
    """smtp-load --sink on a free port (from its port file); stop()
    returns its JSON counts."""

    def __init__(self, workdir, threads=1):
        self.port_file = os.path.join(workdir, "sink.port")
        self.out_path = os.path.join(workdir, "sink.out")
        self.threads = threads
        self.proc = None
        self.port = None

    def start(self):
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen([LOAD, "--sink", "--port-file", self.port_file, "-t",
                                      str(self.threads), "--json"],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    self.port = int(f.read())
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.025)
        self.kill()
        raise AssertionError("smtp-load --sink did not start: " + self.output())

    def output(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.out.close()

    def stop(self):
        """SIGTERM; the sink must exit 0 and print its counts."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        finally:
            self.kill()
        text = self.output()
        if code != 0:
            raise AssertionError("smtp-load --sink exited %r: %s" % (code, text))
        self.counts = json.loads(text.splitlines()[-1])
        return self.counts

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port


def converse(port, steps, timeout=10):
    """Sends each bytes item of |steps| in its own write (a pause between
    them, so the sink reads them apart) and returns everything the
    server sent until it closed."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for step in steps:
            s.sendall(step)
            time.sleep(0.05)
        for _ in range(1000):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


class SmtpLoadTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-smtp-load-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start_sink(self, threads=1):
        sink = LoadSink(self.dir, threads).start()
        self.addCleanup(sink.kill)
        return sink

    def start_proxy(self, sink, **backend_keys):
        pdir = os.path.join(self.dir, "proxy")
        os.makedirs(pdir, exist_ok=True)
        listeners = [{"name": "smtp", "kind": "smtp", "tls": "starttls"},
                     {"name": "submissions", "kind": "submissions"}]
        p = Proxy(pdir, sink.address, listeners=listeners, backend_keys=backend_keys,
                  proxy={"max_per_client": "1000"},
                  extra=MX_CERTIFICATES + "\n[dns]\nreverse_lookup = no\n")
        p.start()
        self.addCleanup(p.stop)
        return p

    def assert_clean(self, code, report, err):
        self.assertIsNotNone(report, err)
        self.assertEqual(code, 0, json.dumps(report) + err)
        self.assertEqual(sum(report["errors"].values()), 0, report["errors"])

    def test_load_counts_match_what_the_sink_received(self):
        sink = self.start_sink(threads=2)
        code, r, err = run_load("-c", 8, "-t", 2, "-m", 3, "-n", 200, "-s", "10K",
                                sink.address)
        self.assert_clean(code, r, err)
        counts = sink.stop()
        self.assertEqual(r["messages"], 200)
        self.assertEqual(r["message_bytes"], 200 * 10240)
        self.assertEqual(counts["messages"], r["messages"])
        self.assertEqual(counts["message_bytes"], r["message_bytes"])
        self.assertEqual(counts["sessions"], r["sessions"])
        self.assertEqual(r["latency_ms"]["data"]["n"], 200)
        self.assertEqual(r["latency_ms"]["connect"]["n"], r["sessions"])

    def test_load_pipelined_transactions_count_the_same(self):
        sink = self.start_sink()
        code, r, err = run_load("--pipelining", "-c", 4, "-m", 10, "-n", 100, "-s", "1K",
                                sink.address)
        self.assert_clean(code, r, err)
        counts = sink.stop()
        self.assertEqual((counts["messages"], counts["message_bytes"]),
                         (100, 100 * 1024))

    def test_load_duration_stop_counts_only_completed_messages(self):
        sink = self.start_sink()
        code, r, err = run_load("-c", 4, "-m", 5, "-d", 1, "-s", "4K", "--source-range", 8,
                                sink.address)
        self.assert_clean(code, r, err)
        counts = sink.stop()
        self.assertGreater(r["messages"], 0)
        # Every message under way at the stop was finished and counted.
        self.assertEqual(counts["messages"], r["messages"])
        self.assertEqual(counts["sessions"], r["sessions"])

    def test_load_sigterm_mid_run_finishes_and_reports(self):
        sink = self.start_sink()
        proc = subprocess.Popen([LOAD, "--json", "-c", "4", "-d", "60", sink.address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        r = json.loads(out)
        counts = sink.stop()
        # The messages in flight at the signal were finished, not cut off:
        # no error, and the sink has exactly what the report counts.
        self.assertEqual(sum(r["errors"].values()), 0, r["errors"])
        self.assertGreater(r["messages"], 0)
        self.assertEqual(counts["messages"], r["messages"])

    def test_load_messages_arrive_whole_with_unique_message_ids(self):
        sink = SmtpSink(os.path.join(self.dir, "pfsink")).start()
        self.addCleanup(sink.stop)
        code, r, err = run_load("-c", 3, "-n", 12, "-s", 3000, "--from", "f@src.test",
                                "--to", "t@dst.test", "127.0.0.1:%d" % sink.port)
        self.assert_clean(code, r, err)
        msgs = sink.wait_messages(12, timeout=30)
        self.assertEqual(len(msgs), 12)
        ids = set()
        for m in msgs:
            self.assertEqual(len(m["data_crlf"]), 3000)
            self.assertEqual(m["sender"], "f@src.test")
            self.assertEqual(m["recipients"], ["t@dst.test"])
            self.assertFalse(any(line.startswith(b".") for line in m["data"].split(b"\n")))
            ids.add(m["message"]["Message-ID"])
        self.assertEqual(len(ids), 12)

    def test_load_plain_through_the_proxy_delivers_exactly_what_it_reports(self):
        sink = self.start_sink()
        p = self.start_proxy(sink)
        code, r, err = run_load("-c", 5, "-m", 4, "-n", 60, "-s", "4K",
                                "127.0.0.1:%d" % p.port("smtp"))
        self.assert_clean(code, r, err)
        self.assertEqual(r["handshakes"], 0)
        p.stop()
        counts = sink.stop()
        self.assertEqual(counts["messages"], 60)
        # The proxy adds its headers: the sink received more octets.
        self.assertGreater(counts["message_bytes"], r["message_bytes"])

    def test_load_starttls_through_the_proxy_delivers_exactly_what_it_reports(self):
        sink = self.start_sink()
        p = self.start_proxy(sink)
        for version in ("1.3", "1.2"):
            code, r, err = run_load("--mode", "starttls", "--tls-version", version, "-c", 4,
                                    "-n", 20, "--sni", "mx.example.test",
                                    "127.0.0.1:%d" % p.port("smtp"))
            self.assert_clean(code, r, err)
            self.assertEqual((r["messages"], r["handshakes"], r["sessions"]), (20, 20, 20))
            self.assertEqual(r["latency_ms"]["handshake"]["n"], 20)
        p.stop()
        self.assertEqual(sink.stop()["messages"], 40)

    def test_load_tls_resumption_resumes_after_first(self):
        sink = self.start_sink()
        p = self.start_proxy(sink)
        port = "127.0.0.1:%d" % p.port("submissions")
        for version in ("1.3", "1.2"):
            code, r, err = run_load("--mode", "tls", "--tls-version", version, "--resume",
                                    "-c", 2, "-n", 10, port)
            self.assert_clean(code, r, err)
            self.assertEqual(r["handshakes"], 10)
            # Each slot's first handshake is a full one; later ones resume.
            self.assertGreater(r["resumed"], 0, version)
            self.assertLessEqual(r["resumed"], 8, version)
        code, r, err = run_load("--mode", "tls", "-c", 2, "-n", 10, port)
        self.assert_clean(code, r, err)
        self.assertEqual((r["handshakes"], r["resumed"]), (10, 0))
        p.stop()
        self.assertEqual(sink.stop()["messages"], 30)

    def test_load_handshake_only_workload_sends_no_message(self):
        sink = self.start_sink()
        p = self.start_proxy(sink)
        code, r, err = run_load("--mode", "tls", "-m", 0, "-c", 3, "-n", 15,
                                "127.0.0.1:%d" % p.port("submissions"))
        self.assert_clean(code, r, err)
        self.assertEqual((r["sessions"], r["handshakes"], r["messages"]), (15, 15, 0))
        p.stop()
        self.assertEqual(sink.stop()["messages"], 0)

    def test_load_idle_reaches_idle_ready_and_exits_0_on_sigterm(self):
        sink = self.start_sink()
        p = self.start_proxy(sink)
        proc = subprocess.Popen([LOAD, "--json", "--mode", "tls", "--idle", "40", "-c", "7",
                                 "--source-range", "4", "127.0.0.1:%d" % p.port("submissions")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        self.assertTrue(ready, "no idle-ready line within 60 s")
        self.assertEqual(proc.stdout.readline(), b"idle-ready 40\n")
        # Held: nothing more is printed until the signal.
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        self.assertFalse(ready)
        self.assertIsNone(proc.poll())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        r = json.loads(out)
        self.assertEqual((r["sessions"], r["handshakes"], r["messages"]), (40, 40, 0))
        self.assertEqual(sum(r["errors"].values()), 0)

    def test_load_idle_counts_failed_opens_and_reports_what_opened(self):
        # Nothing listens: every open fails, the line says 0, the status is 1.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, r, err = run_load("--idle", 5, "-c", 2, "--hold", 0.2, "127.0.0.1:%d" % port)
        self.assertEqual(code, 1)
        self.assertEqual(r["errors"]["connect"], 5)

    def test_load_idle_ready_line_comes_first_on_stdout(self):
        sink = self.start_sink()
        out = subprocess.run([LOAD, "--idle", "25", "-c", "5", "--hold", "0.3", sink.address],
                             capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.startswith(b"idle-ready 25\n"), out.stdout[:200])
        self.assertEqual(sink.stop()["sessions"], 25)

    def test_load_sink_behind_proxy_v2_and_xclient_counts_every_message(self):
        for identity in ("proxy-v2", "proxy-v1", "xclient"):
            sink = LoadSink(self.dir).start()
            try:
                p = self.start_proxy(sink, identity=identity)
                code, r, err = run_load("-c", 3, "-n", 9, "-m", 3,
                                        "127.0.0.1:%d" % p.port("smtp"))
                self.assert_clean(code, r, err)
                p.stop()
            finally:
                counts = sink.stop()
            self.assertEqual(counts["messages"], 9, identity)
            shutil.rmtree(os.path.join(self.dir, "proxy"), True)
            os.unlink(sink.port_file)

    def test_load_sink_survives_a_proxy_v2_header(self):
        sink = self.start_sink()
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
              b"\xc0\x00\x02\x01\xc6\x33\x64\x02\x9c\x40\x00\x19")
        got = converse(sink.port, [v2, b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
                                   b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"])
        self.assertTrue(got.startswith(b"220 sink.test ESMTP smtp-load\r\n250-sink.test\r\n"),
                        got)
        self.assertTrue(got.endswith(b"250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n"), got)
        self.assertNotIn(b"502", got)
        self.assertEqual(sink.stop(), {"sessions": 1, "messages": 1, "message_bytes": 18})

    def test_load_sink_end_of_data_split_across_reads_ends_the_message(self):
        sink = self.start_sink()
        body = b"Subject: split\r\n\r\nline\r\n"
        marker = b"\r\n.\r\n"
        for cut in range(1, len(marker)):
            head = body[:-2] + marker[:cut]
            got = converse(sink.port, [b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", head,
                                       marker[cut:], b"QUIT\r\n"])
            self.assertIn(b"250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n", got, cut)
        # A lone "\n.\n" is not an end: the message goes on to the real one.
        got = converse(sink.port, [b"DATA\r\n", b"a\n.\nb\r\n", b".\r\n", b"QUIT\r\n"])
        self.assertEqual(got.count(b"Ok: queued"), 1, got)
        counts = sink.stop()
        self.assertEqual(counts["messages"], len(marker))
        self.assertEqual(counts["sessions"], len(marker))

    def test_load_exit_status_says_usage_and_errors(self):
        code, _, err = run_load("127.0.0.1:25")  # neither -n nor -d
        self.assertEqual(code, 2, err)
        code, _, err = run_load("--mode", "ssl", "-n", 1, "127.0.0.1:25")
        self.assertEqual(code, 2, err)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, r, err = run_load("-c", 2, "-n", 4, "127.0.0.1:%d" % port)
        self.assertEqual(code, 1, err)
        self.assertEqual(r["errors"]["connect"], 4)
        self.assertEqual(r["messages"], 0)

    def test_load_rejected_step_is_counted_as_that_step(self):
        sink = SmtpSink(os.path.join(self.dir, "pfsink"),
                        extra_args=("-f", "RCPT", "-B", "550 5.1.1 No such user")).start()
        self.addCleanup(sink.stop)
        code, r, err = run_load("-c", 2, "-n", 6, "127.0.0.1:%d" % sink.port)
        self.assertEqual(code, 1, err)
        self.assertEqual(r["errors"]["rcpt"], 6)
        self.assertEqual(sum(r["errors"].values()), 6)
        self.assertEqual(r["messages"], 0)

    def test_load_silent_server_is_a_timeout(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(8)  # connects complete; nobody ever greets
            code, r, err = run_load("-c", 2, "-n", 2, "--timeout", 0.3,
                                    "127.0.0.1:%d" % s.getsockname()[1])
        self.assertEqual(code, 1, err)
        self.assertEqual(r["errors"]["timeout"], 2)


if __name__ == "__main__":
    unittest.main()

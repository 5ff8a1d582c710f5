"""smtp-tls-proxy report (issue 11): the encrypted share of accepted mail,
from the proxy's own log (text and JSON, plain and gzip) after a known
mix of real sessions, and from an mbox and a maildir of messages a real
Postfix received with and without STARTTLS.

The mix through the proxy (smtplib clients, smtp-sink behind it):

  sender (HELO)  listener      TLS       messages
  p1.test        smtp          none      1
  p2.test        smtp          none      2  (one session)
  t1.test        smtp          TLSv1.3   1
  t1.test        smtp          TLSv1.3   2
  s1.test        submissions   TLSv1.3   1  (implicit TLS)
  p1.test        smtp          TLSv1.3   1  (p1 also sent in plaintext)
  v12.test       smtp          TLSv1.2   1
  idle.test      smtp          none      0  (no mail: not counted)

All from 127.0.0.1 (scope loopback), no GeoIP (country unknown).

The STARTTLS failure memory (issue 12: the starttls= field of the end
line) from a synthetic log, no proxy started: ReportStarttlsMemoryTest.
"""
import gzip
import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
import unittest

from peers import PostfixInstance, SmtpSink
from proxyproc import PROXY_BIN, ROOT, Proxy
from tlsharness import STANDARD_CERTIFICATES

CERTS = os.path.join(ROOT, "certs", "test")
MSG = b"From: a@src.test\r\nTo: b@dst.test\r\nSubject: report\r\n\r\nhello\r\n"


def client_ctx(max_version=None):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        c.maximum_version = max_version
    return c


def send(host, port, helo, messages, tls=None, implicit=False, max_version=None):
    """One session: EHLO |helo|, STARTTLS when |tls|, |messages| messages."""
    if implicit:
        s = smtplib.SMTP_SSL(host, port, timeout=20, context=client_ctx(max_version))
    else:
        s = smtplib.SMTP(host, port, timeout=20)
    try:
        s.ehlo(helo)
        if tls and not implicit:
            s.starttls(context=client_ctx(max_version))
            s.ehlo(helo)
        for _ in range(messages):
            s.sendmail("a@src.test", ["b@dst.test"], MSG)
        s.quit()
    finally:
        s.close()


def report(*args, stdin=None):
    r = subprocess.run([PROXY_BIN, "report"] + list(args), input=stdin, capture_output=True,
                       timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode != 0 or "Sanitizer" in err or "runtime error" in err:
        raise AssertionError("report %s exited %d:\n%s\n%s" % (args, r.returncode, out, err))
    return out


def end_records(log):
    """The event=end lines of a text or JSON log as dicts (the fields the
    tests look at: helo, accepted)."""
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            if obj.get("event") == "end":
                out.append(obj)
        elif " event=end " in line:
            out.append(dict(re.findall(r'(\w+)=("[^"]*"|\S*)', line)))
    return out


def row(text, name):
    """The cells of the text report's row |name| as [(percent, part, all)]."""
    m = re.search(r"(?m)^  %s +(.*)$" % re.escape(name), text)
    if not m:
        raise AssertionError("no row %r in:\n%s" % (name, text))
    return re.findall(r"(\d+\.\d)% \((\d+)/(\d+)\)", m.group(1))


def section(text, title):
    m = re.search(r"(?ms)^%s\n(.*?)(?:\n\n|\Z)" % re.escape(title), text)
    if not m:
        raise AssertionError("no section %r in:\n%s" % (title, text))
    return m.group(1)


def share(percent, part, total):
    return (percent, str(part), str(total))


class ReportFromLogTest(unittest.TestCase):
    """The traffic mix once per log format; the report of each log."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-report-")
        cls.sink = SmtpSink(os.path.join(cls.dir, "sink")).start()
        cls.logs = {}
        try:
            for fmt in ("text", "json"):
                cls.logs[fmt] = cls.run_mix(fmt)
        except Exception:
            cls.sink.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sink.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def run_mix(cls, fmt):
        workdir = os.path.join(cls.dir, "proxy-" + fmt)
        os.makedirs(workdir)
        proxy = Proxy(workdir, "%s:%d" % cls.sink.address,
                      listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"},
                                 {"name": "submissions", "kind": "submissions"}],
                      proxy={"log_format": fmt}, extra=STANDARD_CERTIFICATES)
        proxy.start()
        try:
            smtp, subs = proxy.port("smtp"), proxy.port("submissions")
            send("127.0.0.1", smtp, "p1.test", 1)
            send("127.0.0.1", smtp, "p2.test", 2)
            send("127.0.0.1", smtp, "t1.test", 1, tls=True)
            send("127.0.0.1", smtp, "t1.test", 2, tls=True)
            send("127.0.0.1", subs, "s1.test", 1, implicit=True)
            send("127.0.0.1", smtp, "p1.test", 1, tls=True)
            send("127.0.0.1", smtp, "v12.test", 1, tls=True, max_version=ssl.TLSVersion.TLSv1_2)
            send("127.0.0.1", smtp, "idle.test", 0)
            # Each client waited for its 221, but a session writes its end
            # line as it is freed: wait for the eight.
            for _ in range(400):
                if len([e for e in end_records(proxy.log()) if e["helo"].endswith(".test")]) >= 8:
                    break
                time.sleep(0.05)
        finally:
            proxy.stop()
        return proxy.log_path

    def check_text_report(self, text):
        self.assertIn("counted 7", text)
        self.assertIn("without accepted mail", text)
        # sessions 5 of 7 encrypted, messages 6 of 9, senders 3 of 5 (p1
        # sent once in plaintext, so it is no encrypted sender).
        want_all = [share("71.4", 5, 7), share("66.7", 6, 9), share("60.0", 3, 5)]
        self.assertEqual(row(text, "all"), want_all)
        scope = section(text, "by source scope")
        self.assertEqual(row(scope, "loopback"), want_all)
        listener = section(text, "by listener")
        self.assertEqual(row(listener, "smtp"),
                         [share("66.7", 4, 6), share("62.5", 5, 8), share("50.0", 2, 4)])
        self.assertEqual(row(listener, "submissions"),
                         [share("100.0", 1, 1), share("100.0", 1, 1), share("100.0", 1, 1)])
        versions = section(text, "by TLS version (share of all)")
        self.assertEqual(row(versions, "TLSv1.3"),
                         [share("57.1", 4, 7), share("55.6", 5, 9), share("60.0", 3, 5)])
        self.assertEqual(row(versions, "TLSv1.2"),
                         [share("14.3", 1, 7), share("11.1", 1, 9), share("20.0", 1, 5)])
        self.assertEqual(row(versions, "none (plaintext)"),
                         [share("28.6", 2, 7), share("33.3", 3, 9), share("40.0", 2, 5)])
        self.assertEqual([l.split()[0] for l in versions.splitlines()],
                         ["TLSv1.3", "TLSv1.2", "none"])
        country = section(text, "by country (top 10)")
        self.assertEqual(row(country, "unknown"), want_all)

    def check_json_report(self, data):
        self.assertEqual(data["source"], "log")
        total = data["total"]
        self.assertEqual(total["sessions"], {"encrypted": 5, "all": 7, "percent": 71.4})
        self.assertEqual(total["messages"], {"encrypted": 6, "all": 9, "percent": 66.7})
        self.assertEqual(total["senders"], {"encrypted": 3, "all": 5, "percent": 60.0})
        listeners = {r["key"]: r for r in data["by_listener"]}
        self.assertEqual(listeners["smtp"]["senders"], {"encrypted": 2, "all": 4, "percent": 50.0})
        versions = [(r["key"], r["sessions"]["count"], r["messages"]["count"])
                    for r in data["by_tls_version"]]
        self.assertEqual(versions, [("TLSv1.3", 4, 5), ("TLSv1.2", 1, 1), ("none", 2, 3)])
        self.assertEqual([r["key"] for r in data["by_scope"]], ["loopback"])
        self.assertEqual([r["key"] for r in data["by_country"]], ["unknown"])
        self.assertIsNone(data["other_countries"])
        # No client in the mix failed a handshake: nothing withheld.
        memory = data["starttls_memory"]
        self.assertEqual((memory["withheld_sessions"], memory["starttls_failed"]), (0, 0))
        # idle.test and the harness's start-up probes (one per listener).
        with open(self.logs["text"]) as f:
            without = [e for e in end_records(f.read()) if e["accepted"] == "0"]
        self.assertGreaterEqual(len(without), 1)
        self.assertEqual(data["without_accepted_mail"], len(without))

    def test_json_log_lines_are_objects_with_the_end_record_fields(self):
        with open(self.logs["json"], "rb") as f:
            lines = [l for l in f.read().decode("utf-8").splitlines() if l.strip()]
        ends = []
        for line in lines:
            obj = json.loads(line)
            self.assertIn("time", obj)
            self.assertIn(obj["level"], ("error", "warning", "info", "debug"))
            self.assertTrue(all(isinstance(v, str) for v in obj.values()), obj)
            if obj.get("event") == "end":
                ends.append(obj)
        self.assertGreaterEqual(len(ends), 8)
        for obj in ends:
            for key in ("session", "client", "port", "listener", "local_port", "scope",
                        "country", "asn", "helo", "tls", "cipher", "group", "sni", "messages",
                        "accepted", "bytes_in", "bytes_out", "result", "duration"):
                self.assertIn(key, obj)
        tls = [o for o in ends if o["tls"] != "none"]
        self.assertEqual(len(tls), 5)
        self.assertTrue(all(o["group"] not in ("", "-") for o in tls), tls)
        self.assertTrue(all(o["cipher"].startswith("TLS_") for o in tls), tls)
        plain = [o for o in ends if o["tls"] == "none"]
        self.assertTrue(all(o["group"] == "-" and o["cipher"] == "-" for o in plain), plain)

    def test_text_log_end_lines_carry_group_and_local_port(self):
        with open(self.logs["text"], "rb") as f:
            text = f.read().decode("utf-8")
        ends = [l for l in text.splitlines() if "event=end" in l]
        self.assertGreaterEqual(len(ends), 8)
        for l in ends:
            self.assertRegex(l, r" local_port=\d+ ")
            self.assertRegex(l, r" group=\S+ ")
        self.assertTrue(any(re.search(r"tls=TLSv1\.3 cipher=TLS_\S+ group=[A-Za-z0-9]+ ", l)
                            for l in ends))

    def test_report_on_text_log(self):
        self.check_text_report(report(self.logs["text"]))
        self.check_json_report(json.loads(report("--json", self.logs["text"])))

    def test_report_on_json_log(self):
        self.check_text_report(report(self.logs["json"]))
        self.check_json_report(json.loads(report("--json", self.logs["json"])))

    def test_report_reads_gzip_and_standard_input(self):
        gz = os.path.join(self.dir, "proxy.log.gz")
        with open(self.logs["json"], "rb") as f, gzip.open(gz, "wb") as g:
            g.write(f.read())
        self.check_text_report(report(gz))
        with open(gz, "rb") as f:
            self.check_text_report(report(stdin=f.read()))
        with open(self.logs["text"], "rb") as f:
            self.check_json_report(json.loads(report("--json", "-", stdin=f.read())))

    def test_two_logs_add_up(self):
        data = json.loads(report("--json", self.logs["text"], self.logs["json"]))
        self.assertEqual(data["total"]["sessions"], {"encrypted": 10, "all": 14, "percent": 71.4})
        # The same senders in both logs: still five.
        self.assertEqual(data["total"]["senders"], {"encrypted": 3, "all": 5, "percent": 60.0})

    def test_since_and_until_pick_a_window(self):
        with open(self.logs["text"], "rb") as f:
            stamps = re.findall(rb"(?m)^(\S+) level=info session=\S+ event=end", f.read())
        first = stamps[0].decode()
        ended = len(stamps)
        data = json.loads(report("--json", "--since", "2000-01-01", "--until", "2999-01-01",
                                 self.logs["text"]))
        self.assertEqual(data["total"]["sessions"]["all"], 7)
        data = json.loads(report("--json", "--since", "2999-01-01", self.logs["text"]))
        self.assertEqual(data["total"]["sessions"]["all"], 0)
        self.assertIsNone(data["total"]["sessions"]["percent"])
        self.assertEqual(data["outside_window"], ended)
        data = json.loads(report("--json", "--until", first, self.logs["text"]))
        self.assertEqual(data["total"]["sessions"]["all"], 0)
        text = report("--until", "2000-01-01T00:00:00Z", self.logs["json"])
        self.assertIn("window: (open) .. 2000-01-01T00:00:00Z", text)
        self.assertRegex(text, r"(?m)^  all +-")

    def test_usage_errors(self):
        for args in (["--since", "last week"], ["--top", "x"], ["--bogus"],
                     ["--by", "mx.example.test"], ["--mbox", "a", "--maildir", "b"]):
            r = subprocess.run([PROXY_BIN, "report"] + args, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(b"usage: smtp-tls-proxy report", r.stderr)
        r = subprocess.run([PROXY_BIN, "report", os.path.join(self.dir, "missing.log")],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"missing.log", r.stderr)


def end_fields(client, tls, starttls, accepted, listener="smtp", stamp="2024-05-01T10:00:00.000Z"):
    """The fields of an event=end line as the proxy writes them, in order;
    |starttls| None leaves the field out, as in a log from before it."""
    fields = [("time", stamp), ("level", "info"), ("session", "65f0a1b2000000001"),
              ("event", "end"), ("client", client), ("port", "40000"), ("name", "-"),
              ("listener", listener), ("local_port", "2525"), ("scope", "loopback"),
              ("country", "-"), ("asn", "0"), ("as_org", ""), ("helo", "client.example"),
              ("tls", tls), ("cipher", "TLS_AES_128_GCM_SHA256" if tls != "none" else "-"),
              ("group", "X25519" if tls != "none" else "-"), ("sni", "-")]
    if starttls is not None:
        fields.append(("starttls", starttls))
    fields += [("messages", str(accepted)), ("accepted", str(accepted)),
               ("forged_removed", "0"), ("errors", "0"), ("pregreet", "no"),
               ("sync_violations", "0"), ("bytes_in", "500"), ("bytes_out", "300"),
               ("result", "quit"), ("duration", "0.010")]
    return fields


def text_line(fields):
    head = fields[0][1]
    return head + "".join(" %s=%s" % (k, '""' if v == "" else v) for k, v in fields[1:])


def json_line(fields):
    return json.dumps(dict(fields), separators=(",", ":"))


class ReportStarttlsMemoryTest(unittest.TestCase):
    """The STARTTLS failure memory (issue 12) from a synthetic log: the
    proxy withheld STARTTLS from remembered clients, whose mail then came
    in plaintext.

      client       starttls   tls       accepted
      127.0.0.2    withheld   none      1
      127.0.0.3    withheld   none      2
      127.0.0.4    withheld   none      1
      127.0.0.5    withheld   none      0  (withheld, no mail)
      127.0.0.6    withheld   none      0
      127.0.0.7    failed     none      0  (twice: the handshakes that failed)
      127.0.0.8    used       TLSv1.3   1
      127.0.0.9    offered    none      1
      127.0.0.10   none       TLSv1.3   1  (submissions: implicit TLS)
      127.0.0.11   withheld   none      1  (2024-06: outside --until 2024-06-01)
    """

    SESSIONS = [("127.0.0.2", "none", "withheld", 1), ("127.0.0.3", "none", "withheld", 2),
                ("127.0.0.4", "none", "withheld", 1), ("127.0.0.5", "none", "withheld", 0),
                ("127.0.0.6", "none", "withheld", 0), ("127.0.0.7", "none", "failed", 0),
                ("127.0.0.7", "none", "failed", 0), ("127.0.0.8", "TLSv1.3", "used", 1),
                ("127.0.0.9", "none", "offered", 1)]
    LINE = ("STARTTLS failure memory: 3 sessions delivered 4 messages in plaintext because "
            "STARTTLS was withheld; withheld in 5 sessions; 2 STARTTLS handshakes failed")
    MEMORY = {"withheld_sessions": 5, "withheld_delivered_sessions": 3,
              "withheld_delivered_messages": 4, "starttls_failed": 2, "unknown_sessions": 0}

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-report-starttls-")
        ends = [end_fields(*s) for s in cls.SESSIONS]
        ends.append(end_fields("127.0.0.10", "TLSv1.3", "none", 1, listener="submissions"))
        ends.append(end_fields("127.0.0.11", "none", "withheld", 1,
                               stamp="2024-06-02T10:00:00.000Z"))
        other = "2024-05-01T10:00:00.000Z level=info session=65f0a1b2000000001 event=connect " \
                "client=127.0.0.2 port=40000 listener=smtp"
        cls.logs = {}
        for fmt, render in (("text", text_line), ("json", json_line)):
            cls.logs[fmt] = os.path.join(cls.dir, "proxy-%s.log" % fmt)
            with open(cls.logs[fmt], "w") as f:
                f.write(other + "\n" + "".join(render(e) + "\n" for e in ends))
        # A log from before the field: the same sessions, no starttls=.
        cls.old = os.path.join(cls.dir, "old.log")
        with open(cls.old, "w") as f:
            for e in ends:
                f.write(text_line([kv for kv in e if kv[0] != "starttls"]) + "\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_text_report_counts_mail_delivered_because_starttls_was_withheld(self):
        for fmt in ("text", "json"):
            text = report("--until", "2024-06-01", self.logs[fmt])
            self.assertIn("\n\n" + self.LINE + "\n", text, fmt)
            self.assertNotIn("unknown for", text)
            # The tables as before: six sessions with mail, two encrypted.
            self.assertIn("outside the window 1; without accepted mail 4; counted 6", text)
            self.assertEqual(row(text, "all")[:2], [share("33.3", 2, 6), share("28.6", 2, 7)])

    def test_json_report_gives_the_starttls_memory_object(self):
        for fmt in ("text", "json"):
            data = json.loads(report("--json", "--until", "2024-06-01", self.logs[fmt]))
            self.assertEqual(data["starttls_memory"], self.MEMORY, fmt)
            self.assertEqual(data["total"]["sessions"], {"encrypted": 2, "all": 6, "percent": 33.3})
        # Without the window the June session counts too.
        data = json.loads(report("--json", self.logs["text"]))
        self.assertEqual(data["starttls_memory"],
                         dict(self.MEMORY, withheld_sessions=6, withheld_delivered_sessions=4,
                              withheld_delivered_messages=5))

    def test_a_log_without_the_field_is_unknown_not_withheld(self):
        data = json.loads(report("--json", self.old))
        self.assertEqual(data["starttls_memory"],
                         {"withheld_sessions": 0, "withheld_delivered_sessions": 0,
                          "withheld_delivered_messages": 0, "starttls_failed": 0,
                          "unknown_sessions": 11})
        text = report(self.old)
        self.assertIn("STARTTLS failure memory: 0 sessions delivered 0 messages in plaintext", text)
        self.assertIn("  unknown for 11 sessions: no starttls field in the end line", text)
        # Both logs: the old one's sessions stay unknown.
        data = json.loads(report("--json", "--until", "2024-06-01", self.logs["json"], self.old))
        self.assertEqual(data["starttls_memory"], dict(self.MEMORY, unknown_sessions=10))

    def test_a_mailbox_says_the_memory_is_not_available(self):
        mbox = os.path.join(self.dir, "received.mbox")
        with open(mbox, "wb") as f:
            f.write(b"From MAILER-DAEMON Wed May  1 10:00:00 2024\n"
                    b"Received: from a.test (localhost [127.0.0.1]) by mx.example.test\n"
                    b" (Postfix) with ESMTP id 1; Wed, 1 May 2024 10:00:00 +0000\n"
                    b"Subject: x\n\nbody\n")
        text = report("--mbox", mbox)
        self.assertIn("\nSTARTTLS failure memory: not available from Received fields", text)
        self.assertIsNone(json.loads(report("--json", "--mbox", mbox))["starttls_memory"])
        self.assertIn("STARTTLS failure memory", report("--help"))


class ReportFromMailboxTest(unittest.TestCase):
    """Messages a real Postfix received (smtpd with STARTTLS and its TLS
    Received header), some straight from the client, some through the
    proxy in front of that Postfix; the sink keeps what Postfix relayed.

      HELO      path                    Postfix's header    the proxy's header
      a.test    straight                ESMTP               -
      b.test    straight                ESMTP               -
      c.test    straight, STARTTLS      TLSv1.3             -
      d.test    straight, STARTTLS 1.2  TLSv1.2             -
      e.test    proxy, STARTTLS         ESMTP (from proxy)  TLSv1.3
      f.test    proxy                   ESMTP (from proxy)  ESMTP
    """

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-report-mbox-")
        cls.sink = SmtpSink(os.path.join(cls.dir, "sink")).start()
        cls.mta = PostfixInstance(
            os.path.join(cls.dir, "postfix"), relayhost=cls.sink,
            main_cf={"smtpd_tls_security_level": "may",
                     "smtpd_tls_cert_file": os.path.join(CERTS, "mx-rsa.crt"),
                     "smtpd_tls_key_file": os.path.join(CERTS, "mx-rsa.key"),
                     "smtpd_tls_received_header": "yes"})
        pdir = os.path.join(cls.dir, "proxy")
        os.makedirs(pdir)
        cls.proxy = Proxy(pdir, "127.0.0.1:1",  # the backend: set once Postfix listens
                          listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"}],
                          extra=STANDARD_CERTIFICATES)
        try:
            cls.mta.start()
            cls.proxy.backend = "%s:%d" % cls.mta.address
            cls.proxy.start()
            host, port = cls.mta.address
            send(host, port, "a.test", 1)
            send(host, port, "b.test", 1)
            send(host, port, "c.test", 1, tls=True)
            send(host, port, "d.test", 1, tls=True, max_version=ssl.TLSVersion.TLSv1_2)
            send("127.0.0.1", cls.proxy.port(), "e.test", 1, tls=True)
            send("127.0.0.1", cls.proxy.port(), "f.test", 1)
            cls.messages = cls.sink.wait_messages(6, timeout=60)
        except Exception:
            cls.tearDownClass()
            raise
        cls.mbox = os.path.join(cls.dir, "received.mbox")
        with open(cls.mbox, "wb") as f:
            for m in cls.messages:
                f.write(b"From MAILER-DAEMON Wed May  1 10:00:00 2024\n")
                body = re.sub(rb"(?m)^(>*From )", rb">\1", m["data"])
                f.write(body.rstrip(b"\n") + b"\n\n")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.stop()
        finally:
            try:
                cls.mta.stop()
            finally:
                cls.sink.stop()
                shutil.rmtree(cls.dir, ignore_errors=True)

    def test_messages_carry_the_headers_described(self):
        tops = {}
        for m in self.messages:
            rec = m["message"].get_all("Received")
            helo = re.search(r"from (\S+)", rec[0]).group(1)
            tops[helo] = rec
        self.assertEqual(sorted(tops), ["a.test", "b.test", "c.test", "d.test", "e.test", "f.test"])
        self.assertIn("using TLSv1.3 with cipher", tops["c.test"][0])
        self.assertIn("using TLSv1.2 with cipher", tops["d.test"][0])
        self.assertIn("with ESMTP id", tops["e.test"][0])
        self.assertIn("(smtp-tls-proxy) with ESMTPS", tops["e.test"][1])

    def test_report_topmost_header(self):
        text = report("--mbox", self.mbox)
        self.assertIn("read: 6 messages; counted 6", text)
        self.assertEqual(row(text, "all"), [share("33.3", 2, 6), share("33.3", 2, 6)])
        versions = section(text, "by TLS version (share of all)")
        self.assertEqual(row(versions, "TLSv1.3"), [share("16.7", 1, 6), share("16.7", 1, 6)])
        self.assertEqual(row(versions, "TLSv1.2"), [share("16.7", 1, 6), share("16.7", 1, 6)])
        self.assertEqual(row(versions, "none (plaintext)"),
                         [share("66.7", 4, 6), share("66.7", 4, 6)])
        self.assertEqual(row(section(text, "by source scope"), "loopback"),
                         [share("33.3", 2, 6), share("33.3", 2, 6)])
        self.assertNotIn("by listener", text)
        self.assertNotIn("sessions", text)
        data = json.loads(report("--json", "--mbox", self.mbox, "--by", "backend.test"))
        self.assertEqual(data["total"]["messages"], {"encrypted": 2, "all": 6, "percent": 33.3})
        self.assertEqual(data["unclassified"], 0)
        self.assertEqual(data["no_received"], 0)

    def test_report_by_the_proxy_host(self):
        data = json.loads(report("--json", "--mbox", self.mbox, "--by", "mx.example.test"))
        self.assertEqual(data["no_received"], 4)
        self.assertEqual(data["total"]["messages"], {"encrypted": 1, "all": 2, "percent": 50.0})
        self.assertEqual([(r["key"], r["messages"]["count"]) for r in data["by_tls_version"]],
                         [("TLSv1.3", 1), ("none", 1)])
        text = report("--mbox", self.mbox, "--by", "mx.example.test")
        self.assertIn("header: the Received field by mx.example.test", text)
        self.assertIn("without a matching Received field 4", text)

    def test_maildir_gzip_and_unclassified(self):
        md = os.path.join(self.dir, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for i, m in enumerate(self.messages):
            with open(os.path.join(md, "new" if i % 2 else "cur", "%d.msg:2," % i), "wb") as f:
                f.write(m["data"])
        # One header no rule classifies (webmail-style), never guessed.
        with open(os.path.join(md, "new", "99.webmail"), "wb") as f:
            f.write(b"Received: from webmail by mx.example.net with HTTP;\r\n"
                    b" Wed, 1 May 2024 10:00:00 +0000\r\nSubject: x\r\n\r\nbody\r\n")
        data = json.loads(report("--json", "--maildir", md))
        self.assertEqual(data["messages_read"], 7)
        self.assertEqual(data["unclassified"], 1)
        self.assertEqual(data["total"]["messages"], {"encrypted": 2, "all": 6, "percent": 33.3})
        text = report("--maildir", md)
        self.assertIn("unclassified: 1 messages", text)
        gz = self.mbox + ".gz"
        with open(self.mbox, "rb") as f, gzip.open(gz, "wb") as g:
            g.write(f.read())
        data = json.loads(report("--json", "--mbox", gz))
        self.assertEqual(data["total"]["senders"], {"encrypted": 2, "all": 6, "percent": 33.3})


if __name__ == "__main__":
    unittest.main()

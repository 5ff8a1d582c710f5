"""The STARTTLS failure memory with a real Postfix as the sending MTA.

    Postfix (the sender: smtp_tls_security_level = may, TLS it refuses)
        -> smtp-tls-proxy (kind smtp listener, tls = starttls)
        -> smtp-sink (the legacy backend)

Postfix is a PostfixInstance relaying everything it accepts to the
proxy's smtp listener (relayhost); the test injects mail over SMTP into
its smtpd.  Two TLS settings of the sender that the proxy refuses, each
making every STARTTLS handshake fail (Postfix: "Cannot start TLS:
handshake failure"):

* protocol: Postfix capped at TLS 1.2 (smtp_tls_protocols and
  smtp_tls_mandatory_protocols = !SSLv2, !SSLv3, !TLSv1.3), the listener
  takes only TLS 1.3; the proxy logs reason=SSL_routines:_UNSUPPORTED_PROTOCOL.
* ciphers: Postfix at TLS 1.2 with smtp_tls_exclude_ciphers = AES, CHACHA20
  (TLS 1.3 suites are out of reach of Postfix's cipher settings, hence the
  cap), the listener at TLS 1.2 with the kind smtp default cipher list
  (ECDHE/RSA with AES-GCM, ChaCha20, AES); the proxy logs
  reason=SSL_routines:_NO_SHARED_CIPHER.

Postfix's smtp client binds to 127.0.0.2, so its sessions stand apart
from the proxy's own start-up port probe.

What Postfix 3.7 does by itself (smtp_proto.c,
PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE): at level "may" it falls
back to plaintext after a failed handshake, on a new connection in the
same delivery attempt, but only once the message has been queued for at
least minimal_backoff_time.  A fresh message is therefore deferred
(4.7.5) and, on the first retry that is old enough, the handshake fails
once more before the plaintext delivery; Postfix keeps no memory of the
failure, so every new message goes through the same again.  Which retry
is old enough depends on timing (the queue manager takes a deferred
message up to a second before its backoff ends, and the age is counted
in whole seconds: one or two deferrals with the settings here), so the
test for that asserts the structure (every attempt starts with a failed
handshake; exactly one plaintext session; exactly one delivery), not a
count of retries.

Retries are Postfix's own (queue_run_delay 1s, backoff 3s): a flush
before the message is minimal_backoff_time old would only add another
deferral.  Connection caching is off so that each delivery attempt is
its own proxy session and a later message cannot ride on an earlier
plaintext connection.

Set STP_POSTFIX_TRANSCRIPT=<dir> to keep each test's Postfix maillog and
proxy log in <dir> (for the issue's closing note).
"""
import os
import re
import shutil
import smtplib
import tempfile
import time
import unittest

from peers import PostfixInstance, SmtpSink
from proxyproc import Proxy
from tlsharness import MX_CERTIFICATES

SENDER_ADDRESS = "127.0.0.2"  # Postfix's smtp client binds to it
BACKOFF = "3s"  # minimal and maximal_backoff_time of the sending Postfix
WAIT = 60.0  # bound for one message to be delivered (several retries)

TLS12_AT_MOST = "!SSLv2, !SSLv3, !TLSv1.3"

FIELD = re.compile(r'(\w+)=("[^"]*"|\S*)')


def fields(line):
    return {k: v for k, v in FIELD.findall(line)}


class PostfixSenderTest(unittest.TestCase):
    """smtp-sink, the proxy in front of it and a sending Postfix whose
    relayhost is the proxy's smtp listener, in a fresh directory."""

    memory = {}
    # The refusal (see the module docstring): kind smtp takes only TLS 1.3,
    # the sending Postfix at most TLS 1.2.
    listener_tls = {"min_tls_version": "TLSv1.3"}
    postfix_tls = {"smtp_tls_protocols": TLS12_AT_MOST,
                   "smtp_tls_mandatory_protocols": TLS12_AT_MOST}
    reason = "SSL_routines:_UNSUPPORTED_PROTOCOL"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-mem-postfix-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.addCleanup(self.keep_transcript)
        self.sink = SmtpSink(os.path.join(self.dir, "sink"))
        self.sink.start()
        self.addCleanup(self.sink.stop)
        state_dir = os.path.join(self.dir, "state")
        os.makedirs(state_dir)
        workdir = os.path.join(self.dir, "proxy")
        os.makedirs(workdir)
        extra = MX_CERTIFICATES + "\n[starttls_memory]\n" + "".join(
            "%s = %s\n" % kv for kv in self.memory.items())
        self.proxy = Proxy(workdir, "%s:%d" % self.sink.address,
                           listeners=[dict({"name": "smtp", "kind": "smtp",
                                            "tls": "starttls"}, **self.listener_tls)],
                           proxy={"state_dir": state_dir}, extra=extra)
        self.proxy.start()
        self.addCleanup(self.proxy.stop)
        self.mta = PostfixInstance(
            os.path.join(self.dir, "postfix"), myhostname="sender.src.test",
            relayhost=("127.0.0.1", self.proxy.port("smtp")),
            main_cf=dict({
                "smtp_tls_security_level": "may",
                "smtp_tls_loglevel": "1",
                "smtp_bind_address": SENDER_ADDRESS,
                "smtp_connection_cache_on_demand": "no",
                "queue_run_delay": "1s",
                "minimal_backoff_time": BACKOFF,
                "maximal_backoff_time": BACKOFF,
            }, **self.postfix_tls))
        self.addCleanup(self.mta.stop)
        self.mta.start()
        self.sent = 0

    def keep_transcript(self):
        keep = os.environ.get("STP_POSTFIX_TRANSCRIPT")
        if not keep:
            return
        os.makedirs(keep, exist_ok=True)
        name = type(self).__name__
        for peer, attr, suffix in ((getattr(self, "mta", None), "maillog_path", "maillog"),
                                   (getattr(self, "proxy", None), "log_path", "proxy.log")):
            src = getattr(peer, attr, None)
            if src and os.path.exists(src):
                shutil.copy(src, os.path.join(keep, "%s.%s" % (name, suffix)))

    def diagnostics(self):
        return "\n--- maillog:\n%s\n--- proxy log:\n%s" % (self.mta.maillog(), self.proxy.log())

    # ---- the sending Postfix ----

    def inject(self):
        """Hands one message to the sending Postfix; returns (queue id, Message-ID)."""
        self.sent += 1
        message_id = "<%s.%d@src.test>" % (type(self).__name__, self.sent)
        body = ("From: a@src.test\r\nTo: b@dst.test\r\nSubject: message %d\r\n"
                "Message-ID: %s\r\n\r\nhello via postfix\r\n" % (self.sent, message_id))
        with smtplib.SMTP(*self.mta.address, timeout=10) as s:
            s.ehlo("injector.src.test")
            self.assertEqual(s.mail("a@src.test")[0], 250)
            self.assertEqual(s.rcpt("b@dst.test")[0], 250)
            code, reply = s.data(body.encode())
        self.assertEqual(code, 250, reply)
        qid = re.search(rb"queued as (\w+)", reply)
        self.assertIsNotNone(qid, reply)
        return qid.group(1).decode(), message_id

    def postfix_lines(self, qid):
        return [l for l in self.mta.maillog().splitlines() if " %s: " % qid in l]

    def attempts(self, qid):
        """(dsn, status, text) of each delivery attempt Postfix logged for |qid|."""
        rx = re.compile(r" %s: to=<b@dst\.test>, relay=\S+, .*dsn=(\S+), status=(\w+) \((.*)\)$"
                        % qid)
        return [m.groups() for m in map(rx.search, self.postfix_lines(qid)) if m]

    def fallback_notices(self, qid):
        """Postfix's "QID: Cannot start TLS: handshake failure" without a
        status: the handshake failed and it goes on in plaintext."""
        return [l for l in self.postfix_lines(qid)
                if l.endswith(" %s: Cannot start TLS: handshake failure" % qid)]

    # ---- the proxy's view ----

    def sessions(self):
        """The proxy's sessions from the sending Postfix, in connect order:
        dicts with the end line's fields and the tls_failed and
        starttls_withheld lines (or None)."""
        out = {}
        rx = re.compile(r"session=(\S+) event=(\w+) client=%s " % re.escape(SENDER_ADDRESS))
        for line in self.proxy.log().splitlines():
            m = rx.search(line)
            if not m:
                continue
            s = out.setdefault(m.group(1), {"end": None, "tls_failed": None, "withheld": None})
            if m.group(2) == "end":
                s["end"] = fields(line)
                s["end_line"] = line
            elif m.group(2) == "tls_failed":
                s["tls_failed"] = line
            elif m.group(2) == "starttls_withheld":
                s["withheld"] = line
        return list(out.values())

    def deliver(self):
        """Injects one message and waits (bounded) until Postfix is done
        with it and every proxy session it opened has ended.  Returns
        (queue id, Message-ID, that message's proxy sessions,
        Postfix's log lines written meanwhile)."""
        before = len(self.sessions())
        log_before = len(self.mta.maillog())
        qid, message_id = self.inject()
        self.mta.wait_log(r" %s: removed$" % qid, timeout=WAIT)
        deadline = time.monotonic() + 10
        while True:  # bounded: the last session's end line follows its QUIT
            sessions = self.sessions()[before:]
            if all(s["end"] is not None for s in sessions):
                break
            if time.monotonic() > deadline:
                self.fail("a proxy session never ended" + self.diagnostics())
            time.sleep(0.05)
        return qid, message_id, sessions, self.mta.maillog()[log_before:]

    def assert_delivered_once_in_plaintext(self, message_ids):
        """The sink holds exactly one copy of each of |message_ids| and
        nothing else, each received by the proxy without TLS."""
        self.mta.wait_queue_empty(timeout=WAIT)
        self.sink.wait_messages(len(message_ids))
        # Postfix's queue is empty and every proxy session has ended
        # (deliver()): no further copy can come.
        msgs = self.sink.parsed_messages()
        self.assertEqual(sorted(m["message"]["Message-ID"] for m in msgs), sorted(message_ids),
                         self.diagnostics())
        for m in msgs:
            self.assertTrue(m["message"]["X-TLS-Status"].startswith("tls=none;"),
                            m["message"]["X-TLS-Status"])

    def assert_failed_handshake(self, session, remembered):
        self.assertEqual(session["end"]["starttls"], "failed", session["end_line"])
        self.assertEqual(session["end"]["result"], "tls_handshake_failed", session["end_line"])
        self.assertEqual(session["end"]["accepted"], "0", session["end_line"])
        self.assertIsNotNone(session["tls_failed"], self.diagnostics())
        self.assertIn("listener=smtp mode=starttls reason=%s " % self.reason,
                      session["tls_failed"])
        if remembered:
            self.assertIn("remembered=yes key=%s/32" % SENDER_ADDRESS, session["tls_failed"])
        else:
            self.assertIn("remembered=no key=-", session["tls_failed"])

    def assert_plaintext_delivery(self, session, starttls):
        self.assertEqual(session["end"]["starttls"], starttls, session["end_line"])
        self.assertEqual(session["end"]["tls"], "none", session["end_line"])
        self.assertEqual(session["end"]["helo"], "sender.src.test", session["end_line"])
        self.assertEqual(session["end"]["accepted"], "1", session["end_line"])
        self.assertEqual(session["end"]["result"], "quit", session["end_line"])
        self.assertIsNone(session["tls_failed"], self.diagnostics())


class PostfixTls12OnlyWithoutMemoryTest(PostfixSenderTest):
    """Scenario A: the memory is off; what Postfix does by itself."""

    memory = {"enabled": "no"}

    def test_postfix_defers_each_new_message_then_falls_back_to_plaintext_after_another_failed_handshake(self):
        ids = []
        for _ in range(2):  # a second message: Postfix has learnt nothing
            qid, message_id, sessions, log = self.deliver()
            ids.append(message_id)
            attempts = self.attempts(qid)
            why = "%s%s" % (attempts, self.diagnostics())
            self.assertGreaterEqual(len(attempts), 2, why)
            # The fresh message is deferred, and so is every retry until it
            # has been queued for minimal_backoff_time ...
            for dsn, status, text in attempts[:-1]:
                self.assertEqual((dsn, status, text),
                                 ("4.7.5", "deferred", "Cannot start TLS: handshake failure"), why)
            # ... then the handshake fails once more and Postfix goes on in
            # plaintext on a new connection: sent.
            self.assertEqual(attempts[-1][:2], ("2.0.0", "sent"), why)
            self.assertEqual(len(self.fallback_notices(qid)), 1, why)
            # The proxy saw one failed handshake per attempt, never
            # remembered, and one plaintext session in which it offered
            # STARTTLS and Postfix did not use it.
            self.assertEqual(len(sessions), len(attempts) + 1, why)
            for s in sessions[:-1]:
                self.assert_failed_handshake(s, remembered=False)
            self.assert_plaintext_delivery(sessions[-1], starttls="offered")
            self.assertEqual(log.count("SSL_connect error to 127.0.0.1[127.0.0.1]:%d"
                                       % self.proxy.port("smtp")), len(attempts), why)
            self.assertNotIn("event=starttls_withheld", self.proxy.log())
        self.assert_delivered_once_in_plaintext(ids)


class PostfixTls12OnlyWithMemoryTest(PostfixSenderTest):
    """Scenario B: the memory is on (the default)."""

    def test_remembered_failure_lets_postfix_send_the_next_message_in_plaintext_at_first_attempt_exactly_once(self):
        # The first message: the handshake fails and is remembered; Postfix
        # defers the fresh message as it would anyway.  Its retry is not
        # offered STARTTLS and goes in plaintext, with no second handshake.
        qid, first_id, sessions, log = self.deliver()
        attempts = self.attempts(qid)
        why = "%s%s" % (attempts, self.diagnostics())
        self.assertEqual(attempts[0], ("4.7.5", "deferred", "Cannot start TLS: handshake failure"),
                         why)
        self.assertEqual([a[:2] for a in attempts[1:]], [("2.0.0", "sent")], why)
        self.assertEqual(self.fallback_notices(qid), [], why)
        self.assertEqual(len(sessions), 2, why)
        self.assert_failed_handshake(sessions[0], remembered=True)
        self.assert_plaintext_delivery(sessions[1], starttls="withheld")
        self.assertIn("event=starttls_withheld client=%s listener=smtp reason=remembered key=%s/32"
                      % (SENDER_ADDRESS, SENDER_ADDRESS), sessions[1]["withheld"])
        self.assertEqual(log.count("SSL_connect error"), 1, why)

        # The second message: sent at the first attempt, in one session that
        # offered no STARTTLS; Postfix never tries TLS.
        qid, second_id, sessions, log = self.deliver()
        attempts = self.attempts(qid)
        why = "%s%s" % (attempts, self.diagnostics())
        self.assertEqual([a[:2] for a in attempts], [("2.0.0", "sent")], why)
        self.assertEqual(self.fallback_notices(qid), [], why)
        self.assertEqual(len(sessions), 1, why)
        self.assert_plaintext_delivery(sessions[0], starttls="withheld")
        self.assertIsNotNone(sessions[0]["withheld"], why)
        self.assertNotIn("SSL_connect error", log)
        self.assertNotIn("Cannot start TLS", log)

        self.assert_delivered_once_in_plaintext([first_id, second_id])
        self.assertEqual(self.proxy.log().count("event=tls_failed"), 1, self.diagnostics())


class RefusedCiphers:
    """The refusal by cipher: both at TLS 1.2, no cipher in common."""
    listener_tls = {"min_tls_version": "TLSv1.2"}
    postfix_tls = {"smtp_tls_protocols": TLS12_AT_MOST,
                   "smtp_tls_mandatory_protocols": TLS12_AT_MOST,
                   "smtp_tls_exclude_ciphers": "AES, CHACHA20"}
    reason = "SSL_routines:_NO_SHARED_CIPHER"


class PostfixRefusedCiphersWithoutMemoryTest(RefusedCiphers, PostfixTls12OnlyWithoutMemoryTest):
    """Scenario A with the refusal by cipher."""


class PostfixRefusedCiphersWithMemoryTest(RefusedCiphers, PostfixTls12OnlyWithMemoryTest):
    """Scenario B with the refusal by cipher."""


if __name__ == "__main__":
    unittest.main()

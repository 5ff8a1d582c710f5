"""TLS in front of the legacy MTA: STARTTLS on behalf of the backend
(RFC 3207), implicit TLS on 465 (RFC 8314), TLS required on submission
(RFC 6409, RFC 4954), certificates chosen by SNI and by what the client
can verify, the TLS facts in the injected headers, and the TLS parts of
the configuration check.

Real clients only: Python's ssl/smtplib, swaks, openssl s_client and
Postfix's posttls-finger, against the test PKI from `make certs`.
"""
import functools
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import warnings

from fakebackend import MiniMta, ScriptedBackend
from mailcheck import header_values, squeeze, status_pairs
from peers import SmtpSink
from proxyproc import PROXY_BIN, ROOT, Proxy, SmtpConversation

CERTS = os.path.join(ROOT, "certs", "test")
CA = os.path.join(CERTS, "ca.crt")
STATUS = "X-TLS-Status"
TOOL_TIMEOUT = 30


def cert(name):
    return os.path.join(CERTS, name)


# The standard certificate set: mx.example.test with an ECDSA (default,
# served with its chain) and an RSA certificate, mail.other.test, and a
# wildcard *.wild.test.
STANDARD_CERTIFICATES = """
[certificate mx-ecdsa]
cert = {chain}
key = {ecdsa_key}
default = yes

[certificate mx-rsa]
cert = {rsa}
key = {rsa_key}

[certificate other]
cert = {other}
key = {other_key}

[certificate wild]
cert = {wild}
key = {wild_key}
""".format(chain=cert("mx-ecdsa-chain.crt"), ecdsa_key=cert("mx-ecdsa.key"),
           rsa=cert("mx-rsa.crt"), rsa_key=cert("mx-rsa.key"),
           other=cert("other.crt"), other_key=cert("other.key"),
           wild=cert("wild.crt"), wild_key=cert("wild.key"))

STANDARD_LISTENERS = (
    {"name": "smtp", "kind": "smtp", "tls": "starttls"},
    {"name": "submission", "kind": "submission", "tls": "starttls"},
    {"name": "submissions", "kind": "submissions"},
)

# Every IANA TLS cipher suite name has this shape (RFC 8446 B.4, RFC 5246 A.5).
IANA_CIPHER = re.compile(r"^TLS_[A-Z0-9_]+$")
# What the status header's sni= value may hold after sanitising.
SAFE_SNI = re.compile(r"^[A-Za-z0-9._:\[\]-]+$")


@functools.lru_cache(maxsize=None)
def iana_cipher_names():
    """OpenSSL cipher name -> IANA name, from `openssl ciphers -stdname`."""
    out = subprocess.run(["openssl", "ciphers", "-stdname", "ALL:@SECLEVEL=0"],
                         capture_output=True, timeout=TOOL_TIMEOUT, check=True)
    names = {}
    for line in out.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "-":
            names[parts[2]] = parts[0]
    return names


def proxy_received(data):
    rec = [squeeze(v) for v in header_values(data, "Received")
           if "(smtp-tls-proxy)" in v]
    return rec


def body_of_pem(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return m.group(0) if m else None


def describe_cert(pem):
    """(subject CN, key type 'ECDSA'|'RSA') of a PEM certificate."""
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-text"],
                         input=pem.encode(), capture_output=True, timeout=TOOL_TIMEOUT)
    text = out.stdout.decode()
    cn = re.search(r"subject=.*?CN\s*=\s*([^,\n]+)", text)
    if "id-ecPublicKey" in text:
        kind = "ECDSA"
    elif "rsaEncryption" in text:
        kind = "RSA"
    else:
        kind = "?"
    return (cn.group(1).strip() if cn else None), kind


class SniSMTP(smtplib.SMTP):
    """smtplib.SMTP whose starttls() sends |sni| (smtplib uses the host it
    connected to, here an address)."""

    def __init__(self, *args, sni=None, **kw):
        self.sni = sni
        super().__init__(*args, **kw)

    def connect(self, host="localhost", port=0, source_address=None):
        reply = super().connect(host, port, source_address)
        self._host = self.sni
        return reply


class SniSMTP_SSL(smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL that sends |sni| in the ClientHello."""

    def __init__(self, *args, sni=None, **kw):
        self.sni = sni
        super().__init__(*args, **kw)

    def _get_socket(self, host, port, timeout):
        self._host = self.sni
        return super()._get_socket(host, port, timeout)


class TlsTest(unittest.TestCase):
    """Each test gets a backend (smtp-sink, or a MiniMta when backend =
    "mini") and a proxy with the standard listeners and certificates in a
    fresh directory."""

    listeners = STANDARD_LISTENERS
    certificates = STANDARD_CERTIFICATES
    tls_section = ""
    proxy_keys = {}
    backend = "sink"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        if self.backend == "mini":
            self.mta = MiniMta()
            scripted = ScriptedBackend(self.mta.handle).start()
            self.addCleanup(scripted.stop)
            address = scripted.address()
            self.sink = None
        else:
            self.sink = SmtpSink(os.path.join(self.dir, "sink"), verbose=True)
            self.sink.start()
            self.addCleanup(self.sink.stop)
            address = "%s:%d" % self.sink.address
        self.proxy = Proxy(os.path.join(self.dir, "proxy"), address,
                           listeners=[dict(l) for l in self.listeners],
                           proxy=dict(self.proxy_keys),
                           extra=self.certificates + self.tls_section)
        os.makedirs(self.proxy.workdir)
        self.proxy.start()
        # Clients a test opens close first, then the proxy, then the backend.
        self.addCleanup(self.proxy.stop)

    # ---- clients ----

    def port(self, listener):
        return self.proxy.port(listener)

    def ctx(self, verify=True):
        """A client context trusting the test CA (hostname checked)."""
        if verify:
            return ssl.create_default_context(cafile=CA)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        return c

    def conv(self, listener):
        c = SmtpConversation("127.0.0.1", self.port(listener))
        self.addCleanup(c.close)
        c.client_port = c.sock.getsockname()[1]
        return c

    def wait_log_re(self, pattern, timeout=10.0):
        """Bounded wait until the proxy's log matches |pattern|; returns the match."""
        for _ in range(int(timeout / 0.05)):
            m = re.search(pattern, self.proxy.log())
            if m:
                return m
            time.sleep(0.05)
        self.fail("log never matched %r:\n%s" % (pattern, self.proxy.log()))

    def session_line(self, conv, needle, timeout=10.0):
        """The proxy's log line containing |needle| for the session of
        |conv| (found by its client port); waits for it, bounded."""
        connect = re.compile(r"session=(\S+) event=connect client=127\.0\.0\.1 port=%d "
                             % conv.client_port)
        for _ in range(int(timeout / 0.05)):
            log = self.proxy.log()
            m = connect.search(log)
            if m:
                for line in log.splitlines():
                    if "session=%s " % m.group(1) in line and needle in line:
                        return line
            time.sleep(0.05)
        self.fail("no log line with %r for client port %d:\n%s"
                  % (needle, conv.client_port, self.proxy.log()))

    def expect(self, conv, prefix):
        reply = conv.read_reply()
        self.assertTrue(reply.startswith(prefix), "wanted %r, got %r" % (prefix, reply))
        return reply

    def wrap(self, conv, sni="mx.example.test", ctx=None):
        """Run the TLS handshake on |conv|'s socket (after a 220 to
        STARTTLS, or at once for implicit TLS)."""
        self.assertEqual(conv.buf, b"", "bytes after the 220 before TLS")
        if ctx is None:
            ctx = self.ctx(verify=sni is not None and not isinstance(sni, bytes))
        conv.sock = ctx.wrap_socket(conv.sock, server_hostname=sni)
        return conv.sock

    def starttls(self, listener="smtp", sni="mx.example.test", ctx=None, helo=b"client.src.test"):
        """Greeting, EHLO, STARTTLS, handshake, EHLO again. Returns
        (conv, EHLO reply before TLS, EHLO reply under TLS)."""
        c = self.conv(listener)
        self.expect(c, b"220 ")
        c.send(b"EHLO " + helo + b"\r\n")
        before = self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.assertEqual(c.read_reply(), b"220 2.0.0 Ready to start TLS\r\n")
        self.wrap(c, sni, ctx)
        c.send(b"EHLO " + helo + b"\r\n")
        after = self.expect(c, b"250")
        return c, before, after

    def implicit(self, listener="submissions", sni="mx.example.test", ctx=None,
                 helo=b"client.src.test"):
        """Handshake first, then the greeting and EHLO. Returns (conv, EHLO reply)."""
        c = self.conv(listener)
        self.wrap(c, sni, ctx)
        self.expect(c, b"220 ")
        c.send(b"EHLO " + helo + b"\r\n")
        return c, self.expect(c, b"250")

    def send_message(self, conv, sender=b"a@src.test", rcpt=b"b@dst.test",
                     body=b"Subject: tls test\r\n\r\nhello\r\n"):
        conv.send(b"MAIL FROM:<" + sender + b">\r\nRCPT TO:<" + rcpt + b">\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in conv.read_replies(3)], [b"250", b"250", b"354"])
        conv.send(body + b".\r\n")
        self.expect(conv, b"250")

    def only_message(self):
        self.sink.wait_messages(1)
        time.sleep(0.2)  # a second (injected) message would show up by now
        msgs = self.sink.parsed_messages()
        self.assertEqual(len(msgs), 1, [m["meta"] for m in msgs])
        return msgs[0]

    def s_client(self, port, *args, starttls=True, stdin=b"QUIT\r\n"):
        argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
        if starttls:
            argv += ["-starttls", "smtp"]
        argv += list(args)
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=TOOL_TIMEOUT)
        return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode(
            "utf-8", "replace")

    def served_certificate(self, port, *args):
        """(CN, key type, s_client exit code, s_client output) for the leaf
        certificate the proxy serves."""
        code, out = self.s_client(port, *args)
        pem = body_of_pem(out)
        self.assertIsNotNone(pem, "no certificate in s_client output (rc %d):\n%s" % (code, out))
        cn, kind = describe_cert(pem)
        return cn, kind, code, out

    # ---- what the backend got ----

    def assert_tls_headers(self, data, listener, mode, version=None, sni=None,
                           protocol="ESMTPS", cipher=None, group=None, kx_group=True):
        """The proxy's Received and status headers carry the TLS facts.
        kx_group=False: an RSA key exchange, which has no group to name."""
        port = self.port(listener)
        rec = proxy_received(data)
        self.assertEqual(len(rec), 1, data)
        m = re.search(r"by mx\.example\.test \(smtp-tls-proxy\) with (\S+) id \S+ "
                      r"tls (\S+) \((TLSv1\.[0-3])( group (\S+))?( sni (\S+))? port (\d+)\);",
                      rec[0])
        self.assertIsNotNone(m, rec[0])
        self.assertEqual(m.group(1), protocol, rec[0])
        self.assertRegex(m.group(2), IANA_CIPHER)
        if version:
            self.assertEqual(m.group(3), version)
        self.assertEqual(m.group(5) is not None, kx_group, rec[0])
        self.assertEqual(m.group(7), sni, rec[0])
        self.assertEqual(int(m.group(8)), port)
        self.assertEqual(rec[0].count("("), rec[0].count(")"), rec[0])
        status = [squeeze(v) for v in header_values(data, STATUS)]
        self.assertEqual(len(status), 1, data)
        pairs = status_pairs(status[0])
        self.assertEqual(pairs["tls"], m.group(3), status[0])
        self.assertEqual(pairs["cipher"], m.group(2), status[0])
        self.assertEqual(pairs.get("group"), m.group(5), status[0])
        if sni is None:
            self.assertNotIn("sni", pairs, status[0])
        else:
            self.assertEqual(pairs["sni"], sni, status[0])
        self.assertEqual(pairs["listener"], listener)
        self.assertEqual(pairs["port"], str(port))
        self.assertEqual(pairs["mode"], mode)
        self.assertEqual(pairs["client"], "127.0.0.1")
        if cipher is not None:
            self.assertEqual(pairs["cipher"], cipher)
        if group is not None:
            self.assertEqual(pairs["group"], group)
        return pairs


# --------------------------------------------------------------------------
# STARTTLS (RFC 3207)
# --------------------------------------------------------------------------

class StarttlsTest(TlsTest):
    tls_section = "\n[tls]\nhandshake_timeout = 1s\n"

    def test_starttls_offered_before_tls_never_after_and_answered_220_ready(self):
        for listener in ("smtp", "submission"):
            with self.subTest(listener=listener):
                c, before, after = self.starttls(listener)
                self.assertRegex(before, rb"(?m)^250[- ]STARTTLS\r$")
                self.assertNotIn(b"STARTTLS", after)  # RFC 3207 4.2
                c.send(b"QUIT\r\n")
                self.expect(c, b"221")

    def test_starttls_with_argument_gets_501_and_plaintext_session_continues(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS now\r\n")
        self.expect(c, b"501 ")
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        # STARTTLS without the argument still works afterwards.
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")

    def test_second_starttls_under_tls_gets_554_tls_already_active(self):
        c, _, _ = self.starttls("smtp")
        c.send(b"STARTTLS\r\n")
        self.assertEqual(c.read_reply(), b"554 5.5.1 Error: TLS already active\r\n")
        # The TLS session goes on.
        self.send_message(c)
        self.assertIn(b"mode=starttls", self.only_message()["data"])

    def test_starttls_never_reaches_the_backend(self):
        c, _, _ = self.starttls("smtp")
        self.send_message(c)
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        self.only_message()
        log = self.sink.log()
        self.assertIn("EHLO client.src.test", log)
        self.assertNotIn("STARTTLS", log.upper())

    def test_mail_before_starttls_then_rcpt_after_new_ehlo_gets_503(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"MAIL FROM:<before-tls@src.test>\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"503")  # RFC 3207 4.2: the envelope is forgotten
        c.send(b"DATA\r\n")
        self.expect(c, b"503")
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        time.sleep(0.2)
        self.assertEqual(self.sink.parsed_messages(), [])

    def test_mail_after_starttls_without_new_ehlo_gets_503(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.expect(c, b"503")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"503")
        # After EHLO the same transaction goes through.
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        self.send_message(c)
        self.only_message()

    def test_failed_starttls_handshake_closes_without_plaintext_fallback(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        # A client that carries on in plaintext instead of a ClientHello.
        c.send(b"EHLO client.src.test\r\nMAIL FROM:<a@src.test>\r\n")
        rest = c.read_until_eof()
        # At most a TLS alert record (content type 21), never an SMTP reply.
        self.assertNotIn(b"250", rest)
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        line = self.session_line(c, "event=tls_handshake_failed")
        self.assertRegex(line, r"event=tls_handshake_failed client=127\.0\.0\.1 listener=smtp "
                               r"mode=starttls reason=\S+")
        self.assertRegex(self.session_line(c, "event=end"), r"result=tls_handshake_failed")
        self.assertNotIn("MAIL FROM", self.sink.log())

    def test_starttls_client_silent_after_220_is_cut_off_by_handshake_timeout(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        # The socket's own timeout bounds the wait; the log says why it ended.
        self.assertEqual(c.read_until_eof(), b"")
        self.session_line(c, "reason=handshake_timeout")


class StarttlsOnPlaintextListenerTest(TlsTest):
    listeners = STANDARD_LISTENERS + ({"name": "plain", "kind": "smtp", "tls": "none"},)

    def test_starttls_on_tls_none_listener_gets_502_and_is_not_offered(self):
        c = self.conv("plain")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        ehlo = self.expect(c, b"250")
        self.assertNotIn(b"STARTTLS", ehlo)
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"502 ")
        self.send_message(c)
        self.assertNotIn("STARTTLS", self.sink.log().upper())


class StarttlsInjectionTest(TlsTest):
    """CVE-2011-0411: plaintext pipelined after STARTTLS must never run."""

    INJECTED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n"

    def finish_proper_transaction(self, c):
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        self.send_message(c, sender=b"good@src.test", rcpt=b"b@dst.test")
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        msg = self.only_message()
        self.assertEqual(msg["sender"], "good@src.test")
        self.assertEqual(msg["recipients"], ["b@dst.test"])
        self.assertNotIn("evil@x", self.sink.log())
        self.assertNotIn("victim@x", self.sink.log())

    def test_plaintext_pipelined_after_starttls_is_discarded_and_logged(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n" + self.INJECTED)
        self.assertEqual(c.read_reply(), b"220 2.0.0 Ready to start TLS\r\n")
        self.finish_proper_transaction(c)
        log = self.proxy.wait_log("event=starttls_injection")
        self.assertRegex(log, r"event=starttls_injection client=127\.0\.0\.1 bytes=%d\b"
                         % len(self.INJECTED))

    def test_injection_behind_pipelined_ehlo_is_discarded_too(self):
        c = self.conv("submission")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\nSTARTTLS\r\n" + self.INJECTED)
        self.expect(c, b"250")
        self.assertEqual(c.read_reply(), b"220 2.0.0 Ready to start TLS\r\n")
        self.finish_proper_transaction(c)
        self.proxy.wait_log("event=starttls_injection")

    def test_plaintext_after_starttls_in_a_second_segment_is_never_executed(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        time.sleep(0.05)
        c.send(self.INJECTED)
        self.assertEqual(c.read_reply(), b"220 2.0.0 Ready to start TLS\r\n")
        try:
            # Either the bytes were discarded before the handshake ...
            self.finish_proper_transaction(c)
        except (ssl.SSLError, OSError):
            # ... or they reached the TLS library as a broken ClientHello.
            self.session_line(c, "event=tls_handshake_failed")
            time.sleep(0.2)
            self.assertEqual(self.sink.parsed_messages(), [])
            self.assertNotIn("evil@x", self.sink.log())


class StarttlsBackendViewTest(TlsTest):
    """What a legacy MTA sees and offers around STARTTLS."""
    backend = "mini"

    def test_backend_starttls_chunking_xclient_xforward_never_shown(self):
        for listener in ("smtp", "submission"):
            with self.subTest(listener=listener):
                c, before, after = self.starttls(listener)
                for ehlo in (before, after):
                    for kw in (b"CHUNKING", b"XCLIENT", b"XFORWARD"):
                        self.assertNotIn(kw, ehlo)
                # Exactly one STARTTLS before TLS (the proxy's), none after.
                self.assertEqual(before.count(b"STARTTLS"), 1, before)
                self.assertNotIn(b"STARTTLS", after)
                self.assertNotIn(b"AUTH", before)  # RFC 4954 4
                self.assertIn(b"AUTH PLAIN LOGIN", after)
                self.assertIn(b"SIZE", after)

    def test_backend_gets_a_new_session_after_starttls_and_never_the_injected_commands(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO first.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"MAIL FROM:<before@src.test>\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@x>\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO second.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"503")  # the backend forgot the envelope
        self.send_message(c)
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        cmds = self.mta.commands()
        # The first backend session ends at STARTTLS; the post-TLS EHLO
        # opens a second one that knows nothing from before (RFC 3207 4.2).
        self.assertEqual(cmds[:4], [b"EHLO first.src.test", b"MAIL FROM:<before@src.test>",
                                    b"QUIT", b"EHLO second.src.test"], cmds)
        self.assertNotIn(b"STARTTLS", cmds)
        for cmd in cmds:
            self.assertNotIn(b"evil@x", cmd)
            self.assertNotIn(b"victim@x", cmd)
        self.assertEqual(len(self.mta.messages), 1)


# --------------------------------------------------------------------------
# Implicit TLS (RFC 8314)
# --------------------------------------------------------------------------

class ImplicitTlsTest(TlsTest):
    tls_section = "\n[tls]\nhandshake_timeout = 1s\n"

    def test_implicit_tls_handshake_comes_first_then_backend_greeting(self):
        c = self.conv("submissions")
        c.sock.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            c.sock.recv(100)  # no plaintext greeting: the client speaks first
        c.sock.settimeout(10)
        self.wrap(c)
        self.assertEqual(self.expect(c, b"220 "), b"220 smtp-sink ESMTP\r\n")
        c.send(b"EHLO client.src.test\r\n")
        ehlo = self.expect(c, b"250")
        self.assertNotIn(b"STARTTLS", ehlo)
        self.assertIn(b"AUTH", ehlo)

    def test_plaintext_ehlo_on_implicit_port_closes_logs_reason_and_proxy_keeps_serving(self):
        c = self.conv("submissions")
        c.send(b"EHLO x\r\n")
        rest = c.read_until_eof()
        self.assertNotIn(b"220", rest)
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        line = self.session_line(c, "event=tls_handshake_failed")
        self.assertRegex(line, r"event=tls_handshake_failed client=127\.0\.0\.1 "
                               r"listener=submissions mode=implicit reason=\S+")
        self.assertNotIn("reason=client_closed_connection", line)
        self.good_implicit_message()

    def test_random_bytes_on_implicit_port_close_the_connection_and_proxy_keeps_serving(self):
        for n in (1, 5, 700, 20000):
            c = self.conv("submissions")
            c.send(os.urandom(n) if n > 1 else b"\x16")  # 1 byte: a truncated record
            if n == 1:
                c.sock.shutdown(socket.SHUT_WR)
            rest = c.read_until_eof()
            self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
            self.assertRegex(self.session_line(c, "event=tls_handshake_failed"), r"reason=\S+")
        self.good_implicit_message()

    def test_silent_client_on_implicit_port_is_cut_off_by_handshake_timeout(self):
        c = self.conv("submissions")
        # The socket's own timeout bounds the wait; the log says why it ended.
        self.assertEqual(c.read_until_eof(), b"")
        self.session_line(c, "reason=handshake_timeout")
        self.good_implicit_message()

    def test_slow_drip_client_hello_is_cut_off_by_handshake_timeout(self):
        # handshake_timeout bounds the whole handshake, not the pause
        # between two bytes: a client sending its ClientHello a byte at a
        # time must not hold the connection beyond it.
        ctx = self.ctx()
        bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(bio_in, bio_out, server_hostname="mx.example.test")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = bio_out.read()
        c = self.conv("submissions")
        closed = False
        for i in range(14):  # 14 x 0.3 s: well past the 1 s handshake_timeout
            try:
                c.sock.sendall(hello[i:i + 1])
                c.sock.settimeout(0.3)
                closed = c.sock.recv(100) == b""
            except socket.timeout:
                continue
            except OSError:
                closed = True
            if closed:
                break
        self.assertTrue(closed, "connection still open after the whole ClientHello was dripped")
        self.session_line(c, "reason=handshake_timeout")

    def test_backend_down_gives_421_over_tls_after_the_handshake(self):
        self.sink.stop()
        c = self.conv("submissions")
        self.wrap(c)
        self.assertTrue(c.read_reply().startswith(b"421 4.4.1 mx.example.test"))
        self.assertEqual(c.read_until_eof(), b"")

    def test_starttls_under_implicit_tls_gets_554_tls_already_active(self):
        c, _ = self.implicit()
        c.send(b"STARTTLS\r\n")
        self.assertEqual(c.read_reply(), b"554 5.5.1 Error: TLS already active\r\n")
        self.send_message(c)

    def test_resumed_tls13_session_still_carries_tls_facts(self):
        ctx = self.ctx()
        session = None
        for n in range(2):
            c = self.conv("submissions")
            c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.example.test", session=session)
            self.expect(c, b"220")
            c.send(b"EHLO client.src.test\r\n")
            self.expect(c, b"250")
            self.send_message(c, rcpt=b"resumed%d@dst.test" % n)
            c.send(b"QUIT\r\n")
            self.expect(c, b"221")
            self.assertEqual(c.sock.session_reused, n == 1)
            session = c.sock.session
            c.close()
        msgs = self.sink.wait_messages(2)
        resumed = [m for m in msgs if m["recipients"] == ["resumed1@dst.test"]][0]
        self.assert_tls_headers(resumed["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test", version="TLSv1.3")

    def good_implicit_message(self):
        c, _ = self.implicit()
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test")


# --------------------------------------------------------------------------
# Requiring TLS, AUTH (RFC 6409, RFC 4954)
# --------------------------------------------------------------------------

class SubmissionTest(TlsTest):

    def test_submission_mail_before_tls_gets_530(self):
        c = self.conv("submission")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"MAIL FROM:<a@src.test>\r\n")
        self.assertEqual(c.read_reply(), b"530 5.7.0 Must issue a STARTTLS command first\r\n")
        c.send(b"RCPT TO:<b@dst.test>\r\n")
        self.expect(c, b"530 5.7.0")
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        self.assertNotIn("MAIL FROM", self.sink.log())

    def test_submission_ehlo_hides_auth_before_tls_and_shows_it_after(self):
        c, before, after = self.starttls("submission")
        self.assertNotIn(b"AUTH", before)
        self.assertIn(b"STARTTLS", before)
        self.assertIn(b"AUTH PLAIN LOGIN", after)
        self.assertNotIn(b"STARTTLS", after)

    def test_auth_before_tls_on_smtp_listener_gets_538_and_never_reaches_backend(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        ehlo = self.expect(c, b"250")
        self.assertNotIn(b"AUTH", ehlo)
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        self.assertTrue(c.read_reply().startswith(b"538 5.7.11"))
        c.send(b"NOOP\r\n")
        self.expect(c, b"250")
        self.assertNotIn("AUTH", self.sink.log())
        self.assertNotIn("AHVzZXIAc2VjcmV0", self.proxy.log())

    def test_auth_before_tls_on_submission_is_refused_and_never_reaches_backend(self):
        c = self.conv("submission")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        reply = c.read_reply()
        self.assertRegex(reply, rb"^5(30 5\.7\.0|38 5\.7\.11) ")
        self.assertNotIn("AUTH", self.sink.log())

    def test_submission_message_after_starttls_with_smtplib_carries_tls_facts(self):
        s = SniSMTP("127.0.0.1", self.port("submission"), timeout=10, sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        self.assertIn("starttls", s.esmtp_features)
        self.assertNotIn("auth", s.esmtp_features)
        s.starttls(context=self.ctx())
        s.ehlo("client.src.test")
        self.assertNotIn("starttls", s.esmtp_features)
        self.assertIn("auth", s.esmtp_features)
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: submission\r\n\r\nhi\r\n")
        version = s.sock.version()
        s.quit()
        self.assert_tls_headers(self.only_message()["data_crlf"], "submission", "starttls",
                                sni="mx.example.test", version=version)


class AuthTest(TlsTest):
    backend = "mini"

    def test_auth_plain_after_tls_gets_235_and_received_says_esmtpsa(self):
        s = SniSMTP("127.0.0.1", self.port("submission"), timeout=10, sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        s.starttls(context=self.ctx())
        s.ehlo("client.src.test")
        s.user, s.password = "user", "secret"
        code, _ = s.auth("PLAIN", s.auth_plain)
        self.assertEqual(code, 235)
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: authenticated\r\n\r\nhi\r\n")
        s.quit()
        self.assertEqual(len(self.mta.messages), 1)
        data = self.mta.messages[0]
        self.assert_tls_headers(data, "submission", "starttls", sni="mx.example.test",
                                protocol="ESMTPSA")
        self.assertIn(b"AUTH PLAIN AHVzZXIAc2VjcmV0", self.mta.commands())

    def test_refused_second_auth_keeps_the_session_authenticated(self):
        # RFC 4954 4: after a successful AUTH, further AUTH commands get
        # 503; the session stays authenticated, and its mail is ESMTPSA
        # (RFC 3848).
        c, _, _ = self.starttls("submission")
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        self.expect(c, b"235")
        c.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        self.expect(c, b"503")
        self.send_message(c)
        self.assertEqual(len(self.mta.messages), 1)
        self.assert_tls_headers(self.mta.messages[0], "submission", "starttls",
                                sni="mx.example.test", protocol="ESMTPSA")

    def test_auth_login_continuations_are_relayed_over_implicit_tls(self):
        out = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % self.port("submissions"),
             "--tls-on-connect", "--tls-sni", "mx.example.test", "--tls-verify",
             "--tls-ca-path", CA, "--auth", "LOGIN", "--auth-user", "user",
             "--auth-password", "secret", "--from", "a@src.test", "--to", "b@dst.test",
             "--helo", "swaks.src.test", "--body", "login"],
            capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(b"235 2.7.0", out.stdout)
        cmds = self.mta.commands()
        self.assertIn(b"AUTH LOGIN", cmds)
        self.assertIn(b"dXNlcg==", cmds)      # "user", as SASL data
        self.assertIn(b"c2VjcmV0", cmds)      # "secret"
        self.assert_tls_headers(self.mta.messages[0], "submissions", "implicit",
                                sni="mx.example.test", protocol="ESMTPSA")


class AuthBeforeTlsAllowedTest(TlsTest):
    """auth_requires_tls = no lets AUTH through before TLS; STARTTLS must
    still reset the session (RFC 3207 4.2), AUTH included."""
    backend = "mini"
    listeners = ({"name": "smtp", "kind": "smtp", "tls": "starttls",
                  "auth_requires_tls": "no"},)

    def test_starttls_after_auth_is_refused_so_a_plaintext_login_never_carries_into_tls(self):
        """RFC 3207 4.2 wants what was learned before TLS forgotten, but a
        backend keeps a successful AUTH across RSET (Postfix does), so the
        proxy refuses STARTTLS after AUTH instead of letting a plaintext
        login continue under TLS."""
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.assertIn(b"AUTH PLAIN", self.expect(c, b"250"))
        c.send(b"AUTH PLAIN AGF0dGFja2VyAHB3\r\n")  # "attacker" before TLS
        self.expect(c, b"235")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"503 5.5.1")
        # Still a working plaintext session; the message says so.
        self.send_message(c, rcpt=b"first@dst.test")
        self.assertIn("with ESMTPA id", proxy_received(self.mta.messages[0])[0])


# --------------------------------------------------------------------------
# TLS versions and ciphers
# --------------------------------------------------------------------------

def tls11_context():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
        c.minimum_version = ssl.TLSVersion.TLSv1_1
        c.maximum_version = ssl.TLSVersion.TLSv1_1
    return c


class TlsVersionTest(TlsTest):

    def test_tls11_client_refused_on_submission_with_protocol_reason(self):
        code, out = self.s_client(self.port("submission"), "-tls1_1",
                                  "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertNotEqual(code, 0, out)
        self.assertNotIn("BEGIN CERTIFICATE", out)
        self.wait_log_re(r"event=tls_handshake_failed client=127\.0\.0\.1 "
                         r"listener=submission mode=starttls reason=\S*"
                         r"(UNSUPPORTED_PROTOCOL|VERSION)")
        # The same with Python's ssl, on the implicit listener too.
        c = self.conv("submissions")
        with self.assertRaises((ssl.SSLError, OSError)):
            self.wrap(c, "mx.example.test", tls11_context())
        self.assertRegex(self.session_line(c, "event=tls_handshake_failed"),
                         r"listener=submissions mode=implicit reason=\S*"
                         r"(UNSUPPORTED_PROTOCOL|VERSION)")

    def test_tls11_client_accepted_on_smtp_listener_and_header_says_tlsv1_1(self):
        code, out = self.s_client(self.port("smtp"), "-tls1_1",
                                  "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"Protocol\s*: TLSv1\.1")
        c, _, _ = self.starttls("smtp", ctx=tls11_context())
        self.assertEqual(c.sock.version(), "TLSv1.1")
        self.send_message(c)
        pairs = self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                        sni="mx.example.test", version="TLSv1.1")
        self.assertEqual(pairs["cipher"], iana_cipher_names()[c.sock.cipher()[0]])

    def test_tls12_cipher_is_named_by_its_iana_name(self):
        ctx = self.ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c, _, _ = self.starttls("smtp", ctx=ctx)
        openssl_name = c.sock.cipher()[0]
        self.send_message(c)
        pairs = self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                        sni="mx.example.test", version="TLSv1.2")
        self.assertEqual(pairs["cipher"], iana_cipher_names()[openssl_name])
        self.assertNotEqual(pairs["cipher"], openssl_name)


class TlsPolicyConfigTest(TlsTest):
    listeners = (
        {"name": "smtp", "kind": "smtp", "tls": "starttls", "min_tls_version": "TLSv1.3"},
        {"name": "submission", "kind": "submission", "tls": "starttls",
         "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384"},
        {"name": "submissions", "kind": "submissions"},
    )
    tls_section = "\n[tls]\ngroups = P-256\n"

    def test_min_tls_version_on_smtp_listener_refuses_tls12(self):
        ctx = self.ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        with self.assertRaises((ssl.SSLError, OSError)):
            self.wrap(c, "mx.example.test", ctx)
        self.assertRegex(self.session_line(c, "event=tls_handshake_failed"),
                         r"listener=smtp mode=starttls reason=\S*(UNSUPPORTED_PROTOCOL|VERSION)")

    def test_ciphers_setting_limits_tls12_suites(self):
        ctx = self.ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c, _, _ = self.starttls("submission", ctx=ctx)
        self.assertEqual(c.sock.cipher()[0], "ECDHE-ECDSA-AES256-GCM-SHA384")
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submission", "starttls",
                                sni="mx.example.test", version="TLSv1.2",
                                cipher="TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")

    def test_groups_setting_decides_the_key_exchange_group(self):
        c, _ = self.implicit()
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test", group="P-256")


class DefaultCipherPolicyTest(TlsTest):
    """Submission kinds default to forward-secret suites; port 25 keeps a
    broad list, because any TLS beats the plaintext fallback."""

    def rsa_kx_context(self):
        ctx = self.ctx(verify=False)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-GCM-SHA256")  # RSA key exchange, no forward secrecy
        return ctx

    def test_submissions_refuses_a_client_offering_only_non_forward_secret_suites(self):
        with self.assertRaises((ssl.SSLError, OSError)):
            self.implicit(ctx=self.rsa_kx_context())
        self.wait_log_re(r"listener=submissions mode=implicit reason=\S*NO_SHARED_CIPHER")

    def test_smtp_listener_accepts_a_client_offering_only_non_forward_secret_suites(self):
        c, _, _ = self.starttls("smtp", ctx=self.rsa_kx_context())
        self.assertEqual(c.sock.cipher()[0], "AES128-GCM-SHA256")
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                sni="mx.example.test", version="TLSv1.2",
                                cipher="TLS_RSA_WITH_AES_128_GCM_SHA256", kx_group=False)


# --------------------------------------------------------------------------
# Certificates: SNI and key type
# --------------------------------------------------------------------------

class CertificateSelectionTest(TlsTest):

    def check_served(self, servername, want_cn, want_kind="ECDSA", verify=True, *extra):
        args = list(extra)
        args += ["-noservername"] if servername is None else ["-servername", servername]
        if verify:
            args += ["-CAfile", CA, "-verify_return_error", "-verify_hostname", servername]
        cn, kind, code, out = self.served_certificate(self.port("smtp"), *args)
        self.assertEqual((cn, kind), (want_cn, want_kind), out)
        if verify:
            self.assertEqual(code, 0, out)
            self.assertIn("Verify return code: 0 (ok)", out)
        return out

    def test_sni_selects_certificate_by_exact_name_and_chain_verifies(self):
        self.check_served("mx.example.test", "mx.example.test")
        self.check_served("mail.other.test", "mail.other.test")

    def test_sni_name_match_is_case_insensitive(self):
        self.check_served("MAIL.Other.TEST", "mail.other.test")

    def test_sni_wildcard_matches_exactly_one_label(self):
        self.check_served("a.wild.test", "*.wild.test", "RSA")
        # b.c.wild.test is not covered by *.wild.test (RFC 6125 6.4.3).
        self.check_served("b.c.wild.test", "mx.example.test", verify=False)
        self.check_served("wild.test", "mx.example.test", verify=False)

    def test_unknown_or_missing_sni_gets_the_default_certificate(self):
        self.check_served("unknown.test", "mx.example.test", verify=False)
        self.check_served(None, "mx.example.test", verify=False)
        # The default certificate is still a valid chain to the test CA.
        code, out = self.s_client(self.port("smtp"), "-noservername", "-CAfile", CA,
                                  "-verify_return_error")
        self.assertEqual(code, 0, out)

    def test_tls12_client_offering_only_ecdhe_rsa_suites_gets_rsa_certificate(self):
        out = self.check_served("mx.example.test", "mx.example.test", "RSA", True,
                                "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertIn("ECDHE-RSA-AES128-GCM-SHA256", out)

    def test_tls13_client_with_only_rsa_signature_algorithms_gets_rsa_certificate(self):
        out = self.check_served("mx.example.test", "mx.example.test", "RSA", True,
                                "-tls1_3", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")
        self.assertRegex(out, r"Protocol\s*: TLSv1\.3|New, TLSv1\.3")

    def test_tls13_client_accepting_only_p384_ecdsa_gets_rsa_certificate(self):
        # In TLS 1.3 an ECDSA signature algorithm names its curve (RFC 8446
        # 4.2.3): ecdsa_secp384r1_sha384 cannot be made with the P-256
        # key, so only the RSA certificate can complete this handshake.
        self.check_served("mx.example.test", "mx.example.test", "RSA", True,
                          "-tls1_3", "-sigalgs", "ecdsa_secp384r1_sha384:rsa_pss_rsae_sha256")
        self.assertNotIn("NO_COMMON_SIGNATURE_ALGORITHMS", self.proxy.log())

    def test_default_client_gets_ecdsa_certificate_for_dual_key_name(self):
        self.check_served("mx.example.test", "mx.example.test", "ECDSA")
        self.check_served("mx.example.test", "mx.example.test", "ECDSA", True, "-tls1_2")

    def test_implicit_listener_selects_by_sni_too(self):
        code, out = self.s_client(self.port("submissions"), "-servername", "mail.other.test",
                                  "-CAfile", CA, "-verify_return_error",
                                  "-verify_hostname", "mail.other.test", starttls=False)
        self.assertEqual(code, 0, out)
        self.assertEqual(describe_cert(body_of_pem(out))[0], "mail.other.test")


class CertificateNamesConfigTest(TlsTest):
    """names = replaces the certificate's own names; default = picks the
    certificate for clients without (or with an unknown) SNI."""
    certificates = """
[certificate mx-ecdsa]
cert = {chain}
key = {ecdsa_key}

[certificate other]
cert = {other}
key = {other_key}
names = mail.alias.test, *.alias.test
default = yes
""".format(chain=cert("mx-ecdsa-chain.crt"), ecdsa_key=cert("mx-ecdsa.key"),
           other=cert("other.crt"), other_key=cert("other.key"))

    def served_cn(self, *args):
        code, out = self.s_client(self.port("smtp"), *args)
        pem = body_of_pem(out)
        self.assertIsNotNone(pem, out)
        return describe_cert(pem)[0]

    def test_names_and_default_settings_decide_the_certificate(self):
        self.assertEqual(self.served_cn("-servername", "mail.alias.test"), "mail.other.test")
        self.assertEqual(self.served_cn("-servername", "x.alias.test"), "mail.other.test")
        self.assertEqual(self.served_cn("-servername", "mx.example.test"), "mx.example.test")
        self.assertEqual(self.served_cn("-noservername"), "mail.other.test")
        self.assertEqual(self.served_cn("-servername", "nowhere.test"), "mail.other.test")


# --------------------------------------------------------------------------
# The TLS facts in the injected headers, with real clients
# --------------------------------------------------------------------------

class TlsHeadersTest(TlsTest):

    def test_smtp_listener_starttls_with_smtplib_carries_tls_facts(self):
        s = SniSMTP("127.0.0.1", self.port("smtp"), timeout=10, sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        s.starttls(context=self.ctx())
        s.ehlo("client.src.test")
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: smtplib\r\n\r\nhi\r\n")
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        s.quit()
        msg = self.only_message()
        pairs = self.assert_tls_headers(msg["data_crlf"], "smtp", "starttls",
                                        sni="mx.example.test", version=version)
        if version == "TLSv1.3":
            self.assertEqual(pairs["cipher"], cipher)
        self.assertIn(pairs["group"], ("X25519", "P-256", "P-384", "X25519MLKEM768",
                                       "X25519Kyber768Draft00"))
        self.assertIn("from client.src.test (unknown [127.0.0.1])",
                      proxy_received(msg["data_crlf"])[0])

    def test_submissions_with_smtplib_smtp_ssl_carries_tls_facts(self):
        s = SniSMTP_SSL("127.0.0.1", self.port("submissions"), timeout=10,
                        context=self.ctx(), sni="mx.example.test")
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        self.assertNotIn("starttls", s.esmtp_features)
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: smtp_ssl\r\n\r\nhi\r\n")
        version = s.sock.version()
        s.quit()
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test", version=version)

    def test_client_without_sni_gets_no_sni_in_headers(self):
        c, _ = self.implicit(sni=None)
        self.send_message(c)
        data = self.only_message()["data_crlf"]
        self.assert_tls_headers(data, "submissions", "implicit", sni=None)
        self.assertNotIn(" sni ", proxy_received(data)[0])

    def test_swaks_starttls_on_each_starttls_listener(self):
        for i, listener in enumerate(("smtp", "submission")):
            with self.subTest(listener=listener):
                out = subprocess.run(
                    ["swaks", "--server", "127.0.0.1:%d" % self.port(listener), "--tls",
                     "--tls-sni", "mx.example.test", "--tls-verify", "--tls-ca-path", CA,
                     "--from", "a@src.test", "--to", "b%d@dst.test" % i,
                     "--helo", "swaks.src.test", "--body", "swaks"],
                    capture_output=True, timeout=TOOL_TIMEOUT)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn(b"220 2.0.0 Ready to start TLS", out.stdout)
                msgs = self.sink.wait_messages(i + 1)
                msg = [m for m in msgs if m["recipients"] == ["b%d@dst.test" % i]][0]
                self.assert_tls_headers(msg["data_crlf"], listener, "starttls",
                                        sni="mx.example.test")

    def test_swaks_tls_on_connect_on_submissions(self):
        out = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % self.port("submissions"),
             "--tls-on-connect", "--tls-sni", "mail.other.test", "--tls-verify",
             "--tls-ca-path", CA, "--from", "a@src.test", "--to", "b@dst.test",
             "--helo", "swaks.src.test", "--body", "swaks"],
            capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn(b'peer DN="/CN=mail.other.test"', out.stdout)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mail.other.test")

    def test_openssl_s_client_delivers_over_starttls(self):
        script = (b"EHLO sclient.src.test\nMAIL FROM:<a@src.test>\nRCPT TO:<b@dst.test>\n"
                  b"DATA\nSubject: s_client\n\nhello\n.\nQUIT\n")
        code, out = self.s_client(self.port("smtp"), "-servername", "mx.example.test",
                                  "-CAfile", CA, "-verify_return_error", "-crlf", "-quiet",
                                  "-nocommands", stdin=script)
        self.assertEqual(code, 0, out)
        self.assertIn("221", out)
        self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                sni="mx.example.test")

    def test_plaintext_client_on_smtp_listener_delivers_with_tls_none(self):
        s = smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=10)
        self.addCleanup(s.close)
        s.ehlo("plain.src.test")
        self.assertIn("starttls", s.esmtp_features)  # offered, never required
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: plaintext\r\n\r\nhi\r\n")
        s.quit()
        data = self.only_message()["data_crlf"]
        rec = proxy_received(data)
        self.assertEqual(len(rec), 1)
        self.assertIn("with ESMTP id", rec[0])
        self.assertNotIn(" tls ", rec[0])
        pairs = status_pairs(squeeze(header_values(data, STATUS)[0]))
        self.assertEqual(pairs["tls"], "none")
        self.assertEqual(pairs["mode"], "none")
        self.assertEqual(pairs["listener"], "smtp")
        for key in ("cipher", "group", "sni"):
            self.assertNotIn(key, pairs)

    def test_posttls_finger_negotiates_starttls_and_verifies_the_certificate(self):
        conf = os.path.join(self.dir, "postfix-conf")
        os.makedirs(conf)
        open(os.path.join(conf, "main.cf"), "w").close()
        env = dict(os.environ, MAIL_CONFIG=conf)
        out = subprocess.run(
            ["posttls-finger", "-l", "secure", "-F", CA, "-s", "mx.example.test",
             "[127.0.0.1]:%d" % self.port("smtp"), "mx.example.test"],
            capture_output=True, timeout=TOOL_TIMEOUT, env=env)
        text = (out.stdout + out.stderr).decode("utf-8", "replace")
        self.assertIn("> STARTTLS", text)
        self.assertIn("< 220 2.0.0 Ready to start TLS", text)
        self.assertIn("matched peername: mx.example.test", text)
        self.assertRegex(text, r"Verified TLS connection established to 127\.0\.0\.1\S*: "
                               r"TLSv1\.[23] with cipher")
        # The EHLO under TLS offers no STARTTLS but AUTH.
        after = text.split("Verified TLS connection", 1)[1]
        self.assertNotIn("STARTTLS", after)
        self.assertIn("AUTH PLAIN LOGIN", after)
        self.proxy.wait_log("sni=mx.example.test")


# --------------------------------------------------------------------------
# Hostile SNI
# --------------------------------------------------------------------------

HOSTILE_SNI = [
    b"x;tls=forged",
    b'ev(il)"q',
    b"(unbalanced",
    b"close)paren",
    b"evil tls=forged\r\nX-Injected: yes",
    b"a" * 200 + b".test",
    b"b." + b"c" * 63 + b".test",
    b"x" * 255,
]


class HostileSniTest(TlsTest):

    def send_with_sni(self, sni, implicit):
        ctx = self.ctx(verify=False)
        if implicit:
            c, _ = self.implicit(sni=sni, ctx=ctx)
        else:
            c, _, _ = self.starttls("smtp", sni=sni, ctx=ctx)
        self.send_message(c, rcpt=b"rcpt%d@dst.test" % len(self.sent))
        c.send(b"QUIT\r\n")
        self.expect(c, b"221")
        self.sent.append(sni)

    def test_hostile_sni_never_appears_raw_in_headers(self):
        self.sent = []
        for i, sni in enumerate(HOSTILE_SNI):
            self.send_with_sni(sni, implicit=i % 2 == 0)
        msgs = self.sink.wait_messages(len(HOSTILE_SNI))
        self.assertEqual(len(msgs), len(HOSTILE_SNI))
        for m in msgs:
            data = m["data_crlf"]
            sni = self.sent[int(m["recipients"][0][4:].split("@")[0])]
            head = data.split(b"\r\n\r\n", 1)[0]
            self.assertNotRegex(head, rb"(?m)^X-Injected")
            if re.search(rb"[^A-Za-z0-9._:\[\]-]", sni):
                self.assertNotIn(sni, head)
            status = [squeeze(v) for v in header_values(data, STATUS)]
            self.assertEqual(len(status), 1, head)
            pairs = status_pairs(status[0])
            self.assertNotEqual(pairs.get("tls"), "forged")
            self.assertRegex(pairs["tls"], r"^TLSv1\.[0-3]$")
            self.assertRegex(pairs["sni"], SAFE_SNI, head)
            self.assertLessEqual(len(pairs["sni"]), 255)
            rec = proxy_received(data)
            self.assertEqual(len(rec), 1, head)
            self.assertEqual(rec[0].count("("), rec[0].count(")"), rec[0])
            m2 = re.search(r"\(TLSv1\.[0-3] group \S+ sni (\S+) port \d+\);", rec[0])
            self.assertIsNotNone(m2, rec[0])
            self.assertEqual(m2.group(1), pairs["sni"])
            for line in head.split(b"\r\n"):
                self.assertLessEqual(len(line), 998)

    def test_hostile_sni_cannot_forge_log_fields_or_lines(self):
        self.sent = []
        for i, sni in enumerate(HOSTILE_SNI):
            self.send_with_sni(sni, implicit=i % 2 == 1)
        self.sink.wait_messages(len(HOSTILE_SNI))
        log = self.proxy.log()
        self.assertNotIn("X-Injected: yes", log)
        self.assertNotIn(" tls=forged", log)
        for line in log.splitlines():
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT[\d:.]+Z level=\w+ ", "forged log line")
        for sni in HOSTILE_SNI:
            if re.search(rb"[\s\"\\]", sni):
                self.assertNotIn(sni.decode("latin-1"), log)
        values = re.findall(r" sni=(\S*)", log)
        self.assertGreaterEqual(len(values), len(HOSTILE_SNI))
        for v in values:
            self.assertNotIn('"', v)
            self.assertNotIn("\\", v)


# --------------------------------------------------------------------------
# The TLS parts of `smtp-tls-proxy -t`
# --------------------------------------------------------------------------

class TlsConfigCheckTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-tlsconf-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def check(self, listener_extra="", certificates=None, tls=""):
        """Writes a config, runs -t on it; returns (exit code, output,
        path, {marker: line number})."""
        if certificates is None:
            certificates = STANDARD_CERTIFICATES
        text = ("[proxy]\nhostname = mx.example.test\n\n[backend]\naddress = 127.0.0.1:2525\n\n"
                "[listener smtp]\naddress = 127.0.0.1:2526\nkind = smtp\ntls = starttls\n"
                + listener_extra + "\n[listener submission]\naddress = 127.0.0.1:2527\n"
                "kind = submission\n" + certificates + tls)
        path = os.path.join(self.dir, "proxy.conf")
        with open(path, "w") as f:
            f.write(text)
        lines = {}
        for n, line in enumerate(text.split("\n"), 1):
            lines.setdefault(line.strip(), n)
        r = subprocess.run([PROXY_BIN, "-t", "-c", path], capture_output=True,
                           timeout=TOOL_TIMEOUT, cwd=self.dir)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace"), path, lines

    def assert_refused_at(self, code, out, path, line_numbers, *words):
        self.assertNotEqual(code, 0, out)
        m = re.search(re.escape(path) + r":(\d+): (.*)", out)
        self.assertIsNotNone(m, out)
        self.assertIn(int(m.group(1)), line_numbers, out)
        for w in words:
            self.assertIn(w, m.group(2), out)

    def test_standard_tls_config_is_accepted(self):
        code, out, _, _ = self.check(tls="\n[tls]\nhandshake_timeout = 30s\ngroups = X25519:P-256\n")
        self.assertEqual(code, 0, out)

    def test_unreadable_certificate_file_is_refused_with_file_and_line(self):
        missing = os.path.join(self.dir, "missing.crt")
        certs = "\n[certificate mx]\ncert = %s\nkey = %s\n" % (missing, cert("mx-ecdsa.key"))
        code, out, path, lines = self.check(certificates=certs)
        self.assert_refused_at(code, out, path,
                               (lines["[certificate mx]"], lines["cert = %s" % missing]),
                               missing)

    def test_key_not_matching_certificate_is_refused_with_file_and_line(self):
        certs = "\n[certificate mx]\ncert = %s\nkey = %s\n" % (cert("mx-ecdsa.crt"),
                                                             cert("other.key"))
        code, out, path, lines = self.check(certificates=certs)
        self.assert_refused_at(code, out, path,
                               (lines["[certificate mx]"], lines["key = %s" % cert("other.key")]),
                               "does not match")

    def test_unknown_cipher_is_refused_with_file_and_line(self):
        code, out, path, lines = self.check("ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-CIPHER\n")
        self.assert_refused_at(code, out, path,
                               (lines["[listener smtp]"],
                                lines["ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-CIPHER"]),
                               "cipher")

    def test_require_tls_on_kind_smtp_is_refused_unless_forced(self):
        code, out, path, lines = self.check("require_tls = yes\n")
        self.assert_refused_at(code, out, path,
                               (lines["[listener smtp]"], lines["require_tls = yes"]),
                               "require_tls", "force_require_tls")
        code, out, _, _ = self.check("require_tls = yes\nforce_require_tls = yes\n")
        self.assertEqual(code, 0, out)

    def test_expired_certificate_loads_with_a_warning(self):
        certs = STANDARD_CERTIFICATES + "\n[certificate expired]\ncert = %s\nkey = %s\n" % (
            cert("expired.crt"), cert("expired.key"))
        code, out, _, _ = self.check(certificates=certs)
        self.assertEqual(code, 0, out)
        warning = [l for l in out.splitlines() if "expired" in l and "warning" in l]
        self.assertTrue(warning, out)
        self.assertIn(cert("expired.crt"), warning[0])


class RequireTlsForcedTest(TlsTest):
    listeners = ({"name": "smtp", "kind": "smtp", "tls": "starttls", "require_tls": "yes",
                  "force_require_tls": "yes"},)

    def test_forced_require_tls_on_smtp_listener_gets_530_before_tls(self):
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\nMAIL FROM:<a@src.test>\r\n")
        self.expect(c, b"250")
        self.assertEqual(c.read_reply(), b"530 5.7.0 Must issue a STARTTLS command first\r\n")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        self.wrap(c)
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        self.send_message(c)
        self.only_message()


if __name__ == "__main__":
    unittest.main()

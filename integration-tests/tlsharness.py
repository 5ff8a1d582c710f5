"""The shared part of the TLS tests (the test_tls_*.py modules): the test
PKI from `make certs`, the standard listeners and certificate set, TlsTest
(a backend and a proxy per test, and the clients and checks the tests
share), and clients that send the SNI they are told to.

Real clients only: Python's ssl/smtplib, swaks, openssl s_client and
Postfix's posttls-finger.
"""
import functools
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
import unittest

from fakebackend import MiniMta, ScriptedBackend
from mailcheck import header_values, squeeze, status_pairs
from peers import SmtpSink
from proxyproc import ROOT, Proxy, SmtpConversation

CERTS = os.path.join(ROOT, "certs", "test")
CA = os.path.join(CERTS, "ca.crt")
STATUS = "X-TLS-Status"
TOOL_TIMEOUT = 30


def cert(name):
    return os.path.join(CERTS, name)


# mx.example.test with an ECDSA (the default, served with its chain) and
# an RSA certificate.
MX_CERTIFICATES = """
[certificate mx-ecdsa]
cert = {chain}
key = {ecdsa_key}
default = yes

[certificate mx-rsa]
cert = {rsa}
key = {rsa_key}
""".format(chain=cert("mx-ecdsa-chain.crt"), ecdsa_key=cert("mx-ecdsa.key"),
           rsa=cert("mx-rsa.crt"), rsa_key=cert("mx-rsa.key"))

# The standard certificate set: those two, mail.other.test, and a
# wildcard *.wild.test.
STANDARD_CERTIFICATES = MX_CERTIFICATES + """
[certificate other]
cert = {other}
key = {other_key}

[certificate wild]
cert = {wild}
key = {wild_key}
""".format(other=cert("other.crt"), other_key=cert("other.key"),
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

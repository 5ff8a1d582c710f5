"""The interoperability matrix: every client against every backend on
every listener kind, one test (one assertion) per cell.

  clients    swaks; openssl s_client (driven line by line); Python's
             smtplib; a real Postfix relaying through the proxy
             (transport per recipient, TLS "secure" against the test CA)
  backends   smtp-sink; a real Postfix (relaying to an smtp-sink);
             OpenSMTPD 6.8 and Exim 4.96 delivering into maildirs
             (mta_peers, from the .debs .ci/fetch-mta-debs unpacks)
  listeners  smtp: STARTTLS offered, used (smtp) and not used (smtp-plain);
             submission: STARTTLS, TLS required before MAIL;
             submissions: implicit TLS;
             submission+auth, submissions+auth: AUTH PLAIN after TLS, only
             where the backend is configured for AUTH (Exim) and the
             client can log in without more packages (not Postfix: its
             SASL client needs libsasl2-modules)

Left out: posttls-finger, which only probes (EHLO, STARTTLS, certificate,
QUIT) and cannot send a message; openssl on smtp-plain (s_client always
does TLS).

Each cell sends one message with a unique tag and a forged status header
and passes when exactly one copy reached the backend's store, its body is
byte for byte what was sent, and its headers are right: one proxy
Received line (from the client's HELO name and address, "with ESMTPS",
"ESMTPSA" or "ESMTP", the TLS clause and comment with SNI and port), below
the backend's own trace for a real MTA, and one X-TLS-Status naming the
listener, mode, TLS version and client, the forged one gone.

All backends, one proxy per backend and the client Postfix are started
once for the class; the cells run in a thread pool in setUpClass, and each
test method asserts its cell's result. MATRIX=full (make matrix) adds a
1 MiB message per cell and TLS 1.2 variants of the openssl and smtplib
cells.
"""
import base64
import concurrent.futures
import os
import queue
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import threading
import time
import traceback
import unittest

from mailcheck import header_values, squeeze, status_pairs
from mta_peers import Exim, OpenSmtpd, mta_missing
from peers import PeerError, PostfixInstance, SmtpSink
from proxyproc import ROOT, Proxy

FULL = os.environ.get("MATRIX", "") == "full"
CERTS = os.path.join(ROOT, "certs", "test")
CA = os.path.join(CERTS, "ca.crt")
SNI = "mx.example.test"
DOMAIN = "dst.test"
SENDER = "a@src.test"
TOOL_TIMEOUT = 30
DELIVERY_TIMEOUT = 25
WORKERS = 8

CERTIFICATES = """
[certificate mx-ecdsa]
cert = {d}/mx-ecdsa-chain.crt
key = {d}/mx-ecdsa.key
default = yes

[certificate mx-rsa]
cert = {d}/mx-rsa.crt
key = {d}/mx-rsa.key
""".format(d=CERTS)

LISTENERS = (
    {"name": "smtp", "kind": "smtp", "tls": "starttls"},
    {"name": "submission", "kind": "submission", "tls": "starttls"},
    {"name": "submissions", "kind": "submissions"},
)

# column: (proxy listener, how the client gets TLS, AUTH)
COLUMNS = {
    "smtp": ("smtp", "starttls", False),
    "smtp-plain": ("smtp", "none", False),
    "submission": ("submission", "starttls", False),
    "submissions": ("submissions", "implicit", False),
    "submission+auth": ("submission", "starttls", True),
    "submissions+auth": ("submissions", "implicit", True),
}
CLIENTS = ("swaks", "openssl", "smtplib", "postfix")
BACKENDS = ("smtp-sink", "postfix", "opensmtpd", "exim")
AUTH_BACKENDS = ("exim",)
AUTH_CLIENTS = ("swaks", "openssl", "smtplib")


class Cell:
    def __init__(self, client, backend, column, tls12=False, big=False):
        self.client, self.backend, self.column = client, backend, column
        self.listener, self.mode, self.auth = COLUMNS[column]
        self.tls12, self.big = tls12, big
        parts = [client + ("-tls12" if tls12 else ""), backend, column] + (["big"] if big else [])
        self.name = "_".join(re.sub(r"[^a-z0-9]+", "_", p) for p in parts)
        self.helo = "%s.client.test" % client
        self.tag = self.rcpt = None  # set by build_cells

    def label(self):
        return "%s%s%s" % (self.client, " (TLS 1.2)" if self.tls12 else "",
                           " (1 MiB)" if self.big else "")


def build_cells():
    cells = []
    for client in CLIENTS:
        for backend in BACKENDS:
            for column in COLUMNS:
                auth = COLUMNS[column][2]
                if auth and (backend not in AUTH_BACKENDS or client not in AUTH_CLIENTS):
                    continue
                if client == "openssl" and column == "smtp-plain":
                    continue
                cells.append(Cell(client, backend, column))
                if FULL:
                    cells.append(Cell(client, backend, column, big=True))
                    if client in ("openssl", "smtplib") and COLUMNS[column][1] != "none":
                        cells.append(Cell(client, backend, column, tls12=True))
    for i, c in enumerate(cells):
        c.tag = "m%03d" % i
        c.rcpt = "%s-%s@%s" % (c.tag, c.client, DOMAIN)
    return cells


CELLS = build_cells()


def make_message(cell):
    """(headers+body bytes with CRLF, body bytes) for |cell|."""
    body_lines = [
        "Matrix cell %s: %s via %s on %s" % (cell.tag, cell.label(), cell.backend, cell.column),
        ".a line that starts with a dot",
        "..and one with two",
        ".",
        "trailing blanks   ",
        "\ttab-indented",
        "From the start of a line",
        "x" * 900,
        os.urandom(48).hex(),
    ]
    if cell.big:
        body_lines += ["%06d %s" % (i, os.urandom(40).hex()) for i in range(12000)]
    body = ("\r\n".join(body_lines) + "\r\nend\r\n").encode()
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: matrix %s\r\nMessage-ID: <%s.%s@src.test>\r\n"
            "X-TLS-Status: tls=TLSv1.3; cipher=forged-by-client\r\n"
            "Date: Tue, 1 Dec 2026 12:00:00 +0000\r\n\r\n"
            % (SENDER, cell.rcpt, cell.tag, cell.tag, os.urandom(4).hex())).encode()
    return head + body, body


# ---------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------

def tls_context(tls12=False):
    ctx = ssl.create_default_context(cafile=CA)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def send_swaks(cell, port, msg, auth):
    path = os.path.join(cell.workdir, "message.eml")
    with open(path, "wb") as f:
        f.write(msg)
    argv = ["swaks", "--server", "127.0.0.1:%d" % port, "--from", SENDER, "--to", cell.rcpt,
            "--helo", cell.helo, "--data", "@" + path, "--timeout", "20"]
    if cell.mode == "starttls":
        argv += ["--tls"]
    elif cell.mode == "implicit":
        argv += ["--tls-on-connect"]
    if cell.mode != "none":
        argv += ["--tls-sni", SNI, "--tls-verify", "--tls-ca-path", CA]
    if cell.auth:
        argv += ["--auth", "PLAIN", "--auth-user", auth[0], "--auth-password", auth[1]]
    r = subprocess.run(argv, capture_output=True, timeout=TOOL_TIMEOUT)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    if r.returncode != 0:
        # swaks marks the reply it gave up on with <** (<~* under TLS; *** for
        # its own errors).
        why = [l.strip() for l in out.splitlines() if l.lstrip().startswith(("<**", "<~*", "***"))]
        raise AssertionError("swaks exited %d: %s\n%s" % (
            r.returncode, why[0] if why else "", tail(out)))


class PipeSmtp:
    """SMTP over openssl s_client's stdin/stdout, one command at a time."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.transcript = []
        self.err = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in iter(stream.readline, b""):
            q.put(line)
        q.put(None)

    def _drain(self):
        for line in iter(self.proc.stderr.readline, b""):
            self.err.append(line)

    def send(self, data):
        self.transcript.append(b"C: " + data[:200])
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def reply(self, timeout=20.0):
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                raise AssertionError("s_client: no reply within %.0fs\n%s" % (timeout, self.log()))
            if line is None:
                raise AssertionError("s_client: connection closed\n%s" % self.log())
            self.transcript.append(b"S: " + line.rstrip())
            if not re.match(rb"^\d{3}[ -]", line):
                continue  # s_client's own chatter
            lines.append(line)
            if line[3:4] == b" ":
                return b"".join(lines)

    def expect(self, code, data=None):
        if data is not None:
            self.send(data)
        r = self.reply()
        if not r.startswith(code):
            raise AssertionError("s_client: wanted %s after %r, got %r\n%s"
                                 % (code.decode(), (data or b"")[:80], r, self.log()))
        return r

    def log(self):
        return tail((b"\n".join(self.transcript) + b"\n--- stderr:\n" + b"".join(self.err))
                    .decode("utf-8", "replace"))

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def send_openssl(cell, port, msg, auth):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", SNI,
            "-verify_hostname", SNI, "-CAfile", CA, "-verify_return_error", "-crlf", "-quiet",
            "-nocommands"]
    if cell.tls12:
        argv += ["-tls1_2"]
    if cell.mode == "starttls":
        argv += ["-starttls", "smtp", "-name", cell.helo]
    c = PipeSmtp(argv)
    try:
        if cell.mode == "implicit":
            c.expect(b"220")
        c.expect(b"250", b"EHLO %s\n" % cell.helo.encode())
        if cell.auth:
            token = base64.b64encode(b"\0" + auth[0].encode() + b"\0" + auth[1].encode())
            c.expect(b"235", b"AUTH PLAIN " + token + b"\n")
        c.expect(b"250", b"MAIL FROM:<%s>\n" % SENDER.encode())
        c.expect(b"250", b"RCPT TO:<%s>\n" % cell.rcpt.encode())
        c.expect(b"354", b"DATA\n")
        # -crlf turns each LF into CRLF: send LF lines, dot-stuffed.
        lines = msg.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        c.send(b"".join((b"." + l if l.startswith(b".") else l) + b"\n" for l in lines))
        c.expect(b"250", b".\n")
        c.expect(b"221", b"QUIT\n")
    finally:
        c.close()


def ehlo(s):
    code, text = s.ehlo()
    if code != 250:
        raise AssertionError("smtplib: EHLO%s got %d %s" % (
            " after STARTTLS" if s.sock is not None and hasattr(s.sock, "cipher") else "",
            code, text.decode("utf-8", "replace")))


class _SniSMTP(smtplib.SMTP):
    def connect(self, host="localhost", port=0, source_address=None):
        reply = super().connect(host, port, source_address)
        self._host = SNI  # starttls() names the server by self._host
        return reply


class _SniSMTP_SSL(smtplib.SMTP_SSL):
    def _get_socket(self, host, port, timeout):
        self._host = SNI
        return super()._get_socket(host, port, timeout)


def send_smtplib(cell, port, msg, auth):
    ctx = tls_context(cell.tls12)
    if cell.mode == "implicit":
        s = _SniSMTP_SSL("127.0.0.1", port, timeout=20, context=ctx,
                         local_hostname=cell.helo)
    else:
        s = _SniSMTP("127.0.0.1", port, timeout=20, local_hostname=cell.helo)
    try:
        ehlo(s)
        if cell.mode == "starttls":
            s.starttls(context=ctx)
            ehlo(s)  # smtplib itself would go on after a refused EHLO
        if cell.auth:
            s.login(auth[0], auth[1])
        refused = s.sendmail(SENDER, [cell.rcpt], msg)
        if refused:
            raise AssertionError("smtplib: refused %r" % refused)
        s.quit()
    finally:
        s.close()


def tail(text, n=3000):
    return text if len(text) <= n else "...\n" + text[-n:]


# ---------------------------------------------------------------------------
# the client Postfix: one instance, one transport per recipient
# ---------------------------------------------------------------------------

CLIENT_POSTFIX_SERVICES = """\
stls      unix  -       -       n       -       -       smtp
  -o smtp_tls_security_level=secure -o smtp_tls_secure_cert_match=%(sni)s
plain     unix  -       -       n       -       -       smtp
  -o smtp_tls_security_level=none
wrap      unix  -       -       n       -       -       smtp
  -o smtp_tls_wrappermode=yes -o smtp_tls_security_level=secure
  -o smtp_tls_secure_cert_match=%(sni)s
""" % {"sni": SNI}


class ClientPostfix(PostfixInstance):
    """A Postfix that relays each matrix recipient through the proxy
    listener of its cell (transport_maps), with STARTTLS, plaintext or
    wrapper-mode TLS as the cell says."""

    def __init__(self, workdir, routes):
        self.routes = routes
        os.makedirs(workdir, exist_ok=True)
        self.transport_path = os.path.join(workdir, "transport")
        super().__init__(workdir, myhostname="postfix.client.test", main_cf={
            "transport_maps": "texthash:" + self.transport_path,
            "smtp_tls_CAfile": CA,
            "smtp_tls_servername": SNI,
            "smtp_tls_loglevel": "1",
            "smtp_connection_cache_on_demand": "no",
            "smtp_helo_timeout": "20s",
        })

    def master_cf_text(self):
        return super().master_cf_text() + CLIENT_POSTFIX_SERVICES

    def start(self, timeout=60.0):
        with open(self.transport_path, "w") as f:
            for rcpt, route in self.routes.items():
                f.write("%s %s\n" % (rcpt, route))
        return super().start(timeout)


def send_postfix(cell, port, msg, auth, client_postfix):
    with smtplib.SMTP(*client_postfix.address, timeout=20, local_hostname="injector.test") as s:
        s.sendmail(SENDER, [cell.rcpt], msg)


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

BACKEND_TRACE = {"postfix": "(Postfix)", "opensmtpd": "(OpenSMTPD)", "exim": "(Exim 4.96)"}


def check_copy(cell, data, body, port):
    """Raise AssertionError unless |data| (CRLF) is a correct copy."""
    head, sep, got_body = data.partition(b"\r\n\r\n")
    if got_body.rstrip(b"\r\n") != body.rstrip(b"\r\n"):
        import difflib
        diff = "\n".join(list(difflib.unified_diff(
            body.decode("latin-1").splitlines(), got_body.decode("latin-1").splitlines(),
            "sent", "delivered", lineterm="", n=1))[:30])
        raise AssertionError("body changed:\n" + diff)
    if b"forged-by-client" in head:
        raise AssertionError("the client's forged X-TLS-Status survived:\n%s" % head.decode())
    received = [squeeze(v) for v in header_values(data, "Received")]
    ours = [i for i, r in enumerate(received) if "(smtp-tls-proxy)" in r]
    if len(ours) != 1:
        raise AssertionError("%d proxy Received lines:\n%s" % (len(ours), head.decode()))
    rec = received[ours[0]]
    helo = "postfix.client.test" if cell.client == "postfix" else cell.helo
    if not rec.startswith("from %s (" % helo) or "[127.0.0.1]" not in rec.split(" by ")[0]:
        raise AssertionError("Received does not name %s [127.0.0.1]: %s" % (helo, rec))
    tls = cell.mode != "none"
    proto = "ESMTP" + ("S" if tls else "") + ("A" if cell.auth else "")
    m = re.search(r"by mx\.example\.test \(smtp-tls-proxy\) with (\S+) id \S+( tls (\S+) "
                  r"\((TLSv1\.[0-3])( group \S+)?( sni (\S+))? port (\d+)\))?;", rec)
    if not m:
        raise AssertionError("proxy Received has an unexpected shape: %s" % rec)
    if m.group(1) != proto:
        raise AssertionError("Received says with %s, wanted %s: %s" % (m.group(1), proto, rec))
    if tls:
        if not m.group(2):
            raise AssertionError("Received has no tls clause: %s" % rec)
        if not re.match(r"^TLS_[A-Z0-9_]+$", m.group(3)):
            raise AssertionError("cipher %r is not an IANA name: %s" % (m.group(3), rec))
        want_version = "TLSv1.2" if cell.tls12 else "TLSv1.3"
        if m.group(4) != want_version:
            raise AssertionError("Received says %s, wanted %s: %s" % (m.group(4), want_version, rec))
        if m.group(7) != SNI or int(m.group(8)) != port:
            raise AssertionError("Received comment lacks sni %s port %d: %s" % (SNI, port, rec))
    elif m.group(2):
        raise AssertionError("plaintext session but a tls clause: %s" % rec)
    trace = BACKEND_TRACE.get(cell.backend)
    if trace:
        theirs = [i for i, r in enumerate(received) if trace in r]
        if not theirs or theirs[0] > ours[0]:
            raise AssertionError("no %s trace above the proxy's Received:\n%s"
                                 % (trace, head.decode()))
    status = [squeeze(v) for v in header_values(data, "X-TLS-Status")]
    if len(status) != 1:
        raise AssertionError("%d X-TLS-Status headers:\n%s" % (len(status), head.decode()))
    p = status_pairs(status[0])
    want = {"listener": cell.listener, "port": str(port), "client": "127.0.0.1",
            "mode": cell.mode, "scope": "loopback"}
    if tls:
        want.update({"tls": m.group(4), "cipher": m.group(3), "sni": SNI})
    else:
        want["tls"] = "none"
    bad = {k: (p.get(k), v) for k, v in want.items() if p.get(k) != v}
    if bad:
        raise AssertionError("X-TLS-Status %s: (got, wanted) %r" % (status[0], bad))


# ---------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------

class Backend:
    """One backend, its message store and the proxy in front of it."""

    def __init__(self, name, workdir):
        self.name = name
        self.workdir = workdir
        self.peers = []      # started, stopped in reverse order
        self.store = None    # has parsed_messages() -> [{"data_crlf": ...}]
        self.proxy = None
        self.auth = None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        if self.name == "smtp-sink":
            sink = self._add(SmtpSink(os.path.join(self.workdir, "sink")))
            self.store, address = sink, sink.address
        elif self.name == "postfix":
            sink = self._add(SmtpSink(os.path.join(self.workdir, "sink")))
            mta = self._add(PostfixInstance(os.path.join(self.workdir, "postfix"),
                                            relayhost=sink, myhostname="backend-postfix.test"))
            self.store, address = sink, mta.address
            self.mta = mta
        elif self.name == "opensmtpd":
            mta = self._add(OpenSmtpd(os.path.join(self.workdir, "opensmtpd"), domain=DOMAIN))
            self.store, address = mta, mta.address
        elif self.name == "exim":
            mta = self._add(Exim(os.path.join(self.workdir, "exim"), domain=DOMAIN, auth=True))
            self.store, address = mta, mta.address
            self.auth = (mta.auth_user, mta.auth_password)
        pdir = os.path.join(self.workdir, "proxy")
        os.makedirs(pdir, exist_ok=True)
        self.proxy = self._add(Proxy(pdir, "%s:%d" % address,
                                     listeners=[dict(l) for l in LISTENERS],
                                     extra=CERTIFICATES))
        return self

    def _add(self, peer):
        peer.start()
        self.peers.append(peer)
        return peer

    def stop(self):
        errors = []
        for peer in reversed(self.peers):
            try:
                peer.stop()
            except Exception as e:  # stop the rest, report afterwards
                errors.append("%s: %s" % (type(peer).__name__, e))
        self.peers = []
        if errors:
            raise AssertionError("stopping backend %s:\n%s" % (self.name, "\n".join(errors)))

    def copies(self, tag):
        needle = ("\r\nSubject: matrix %s\r\n" % tag).encode()
        out = []
        for m in self.store.parsed_messages():
            data = m["data_crlf"]
            head = b"\r\n" + data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
            if needle in head:
                out.append(data)
        return out

    def diagnostics(self):
        parts = []
        for peer in self.peers:
            if isinstance(peer, PostfixInstance):
                parts.append("postfix maillog:\n" + tail(peer.maillog(), 1500))
            elif hasattr(peer, "log") and not isinstance(peer, Proxy):
                parts.append("%s log:\n%s" % (type(peer).__name__, tail(peer.log(), 1500)))
        return "\n".join(parts)


def run_cell(cell, backend, client_postfix):
    """Send the cell's message and wait for its first copy; returns
    (message bytes, body bytes, proxy port)."""
    port = backend.proxy.port(cell.listener)
    msg, body = make_message(cell)
    sender = {"swaks": send_swaks, "openssl": send_openssl, "smtplib": send_smtplib}.get(cell.client)
    if sender:
        sender(cell, port, msg, backend.auth)
    else:
        send_postfix(cell, port, msg, backend.auth, client_postfix)
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    failed = re.compile(r"to=<%s>.*status=(deferred|bounced) \((.*)\)" % re.escape(cell.rcpt))
    for _ in range(int(DELIVERY_TIMEOUT / 0.1) + 1):
        copies = backend.copies(cell.tag)
        if copies:
            return copies[0], body, port
        if cell.client == "postfix":
            m = failed.search(client_postfix.maillog())
            if m:
                raise AssertionError("the client Postfix says status=%s: %s"
                                     % (m.group(1), m.group(2)))
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise AssertionError("no copy reached %s within %ds\n%s"
                         % (cell.backend, DELIVERY_TIMEOUT, backend.diagnostics()))


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Traceback"):
            return line
    return text


class MatrixTest(unittest.TestCase):
    """One test per cell; the cells themselves run in setUpClass."""

    results = {}
    dir = None

    @classmethod
    def setUpClass(cls):
        missing = mta_missing()
        if missing:
            raise RuntimeError("the matrix needs OpenSMTPD and Exim: " + missing)
        cls.started = time.monotonic()
        cls.dir = tempfile.mkdtemp(prefix="stp-matrix-")
        cls.backends = {}
        cls.client_postfix = None
        try:
            cls._start_peers()
            cls._run_cells()
        except BaseException:
            cls._stop_peers()
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise

    @classmethod
    def _start_peers(cls):
        with concurrent.futures.ThreadPoolExecutor(len(BACKENDS)) as pool:
            futures = {}
            for name in BACKENDS:
                b = Backend(name, os.path.join(cls.dir, name))
                futures[name] = pool.submit(b.start)
                cls.backends[name] = b
            errors = []
            for name, f in futures.items():
                try:
                    f.result()
                except Exception as e:
                    errors.append("backend %s: %s" % (name, e))
            if errors:
                raise RuntimeError("\n".join(errors))
        routes = {}
        for cell in CELLS:
            if cell.client == "postfix":
                port = cls.backends[cell.backend].proxy.port(cell.listener)
                service = {"starttls": "stls", "none": "plain", "implicit": "wrap"}[cell.mode]
                routes[cell.rcpt] = "%s:[127.0.0.1]:%d" % (service, port)
        cls.client_postfix = ClientPostfix(os.path.join(cls.dir, "client-postfix"), routes)
        cls.client_postfix.start()

    @classmethod
    def _run_cells(cls):
        def one(cell):
            cell.workdir = tempfile.mkdtemp(prefix=cell.tag + "-", dir=cls.dir)
            t = time.monotonic()
            try:
                return (cell, run_cell(cell, cls.backends[cell.backend], cls.client_postfix),
                        None, time.monotonic() - t)
            except Exception as e:
                detail = "%s: %s" % (type(e).__name__, e) if isinstance(
                    e, (AssertionError, PeerError)) else traceback.format_exc()
                return cell, None, detail, time.monotonic() - t

        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            outcomes = list(pool.map(one, CELLS))
        # Duplicates would have reached the stores by now.
        time.sleep(1.0)
        for cell, got, err, secs in outcomes:
            if err is None:
                data, body, port = got
                backend = cls.backends[cell.backend]
                try:
                    n = len(backend.copies(cell.tag))
                    if n != 1:
                        raise AssertionError("delivered %d times" % n)
                    check_copy(cell, data, body, port)
                except AssertionError as e:
                    err = "AssertionError: %s" % e
            cls.results[cell.name] = (err, secs)
        cls.elapsed = time.monotonic() - cls.started

    @classmethod
    def _stop_peers(cls):
        errors = []
        if cls.client_postfix is not None:
            try:
                cls.client_postfix.stop()
            except Exception as e:
                errors.append("client postfix: %s" % e)
        for b in cls.backends.values():
            try:
                b.stop()
            except Exception as e:
                errors.append(str(e))
        return errors

    @classmethod
    def tearDownClass(cls):
        errors = cls._stop_peers()
        print_table(cls.results, getattr(cls, "elapsed", 0.0))
        shutil.rmtree(cls.dir, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))


def print_table(results, elapsed):
    columns = [c for c in COLUMNS]
    rows = {}
    for cell in CELLS:
        if cell.name not in results:
            continue
        err, _ = results[cell.name]
        rows.setdefault((cell.label(), cell.backend), {})[cell.column] = (
            "ok" if err is None else "FAIL")
    if not rows:
        return
    w = max(len("%s / %s" % k) for k in rows) + 1
    lines = ["", "interoperability matrix (%d cells, %.1fs):" % (len(results), elapsed),
             "%-*s" % (w, "client / backend") + "".join("%-17s" % c for c in columns)]
    for key, cols in rows.items():
        lines.append("%-*s" % (w, "%s / %s" % key) +
                     "".join("%-17s" % cols.get(c, "-") for c in columns))
    for cell in CELLS:
        err = results.get(cell.name, (None, 0))[0]
        if err:
            lines.append("FAIL %s: %s" % (cell.name, first_line(err)))
    print("\n".join(lines), flush=True)


def _make_test(name):
    def test(self):
        if name not in self.results:
            self.fail("cell %s did not run" % name)
        err, _secs = self.results[name]
        self.assertIsNone(err, err)
    return test


for _cell in CELLS:
    setattr(MatrixTest, "test_" + _cell.name, _make_test(_cell.name))
del _cell


if __name__ == "__main__":
    unittest.main()

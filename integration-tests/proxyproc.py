"""Start and stop the real smtp-tls-proxy binary for integration tests.

Every proxy gets its own directory, its own configuration file with free
ports, and its own log; stop() fails the test if the sanitizer build
reported a memory error or the process did not exit cleanly.
"""
import os
import signal
import socket
import subprocess
import time

from peers import free_port, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The suite runs as root in CI and in fresh roots; the proxy refuses to
# run as root without [proxy] user unless allowed. The tests of the
# privilege drop itself (test_privileges.py) take this out again.
if os.geteuid() == 0:
    os.environ.setdefault("SMTP_TLS_PROXY__PROXY__ALLOW_ROOT", "yes")

PROXY_BIN = os.environ.get("PROXY_BIN", os.path.join(ROOT, "proxy", "smtp-tls-proxy"))
# The build without sanitizers, for what the sanitizers distort (memory).
PLAIN_PROXY_BIN = os.environ.get("PLAIN_PROXY_BIN",
                                 os.path.join(ROOT, "proxy", "smtp-tls-proxy"))


class Proxy:
    """One smtp-tls-proxy process.

    listeners: list of dicts with keys name, kind and optional host, tls,
    require_tls and any other listener key; port is chosen if absent.
    backend: "host:port" or a unix path. proxy: extra [proxy] keys;
    backend_keys: extra [backend] keys (e.g. {"identity": "xclient"}).
    After start(), port(name) gives a listener's port.
    """

    def __init__(self, workdir, backend, listeners=None, proxy=None, extra="",
                 backend_keys=None, nofile=None, binary=None):
        self.workdir = workdir
        self.backend = backend
        self.listeners = listeners or [{"name": "smtp", "kind": "smtp"}]
        self.proxy_keys = {"hostname": "mx.example.test", "workers": "2",
                           "shutdown_grace": "5s"}
        self.proxy_keys.update(proxy or {})
        self.extra = extra
        self.backend_keys = dict(backend_keys or {})
        self.nofile = nofile  # RLIMIT_NOFILE (soft and hard) for the proxy
        self.binary = binary or PROXY_BIN
        self.proc = None
        self.log_path = os.path.join(workdir, "proxy.log")
        self.conf_path = os.path.join(workdir, "proxy.conf")
        self.ports = {}

    def config_text(self):
        lines = ["[proxy]"]
        lines += ["%s = %s" % kv for kv in self.proxy_keys.items()]
        lines += ["", "[backend]", "address = %s" % self.backend]
        lines += ["%s = %s" % kv for kv in self.backend_keys.items()]
        for l in self.listeners:
            host = l.get("host", "127.0.0.1")
            port = l.get("port") or free_port(host)
            self.ports[l["name"]] = port
            addr = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
            lines += ["", "[listener %s]" % l["name"], "address = %s" % addr]
            for k, v in l.items():
                if k not in ("name", "host", "port"):
                    lines.append("%s = %s" % (k, v))
        return "\n".join(lines) + "\n" + self.extra

    def start(self):
        with open(self.conf_path, "w") as f:
            f.write(self.config_text())
        self.logfile = open(self.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        limit = None
        if self.nofile is not None:
            import resource

            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen([self.binary, "-c", self.conf_path],
                                     stdout=self.logfile, stderr=subprocess.STDOUT,
                                     env=env, cwd=self.workdir, preexec_fn=limit)
        try:
            for l in self.listeners:
                wait_port(l.get("host", "127.0.0.1"), self.ports[l["name"]], timeout=10)
        except Exception:
            self.stop(check=False)
            raise RuntimeError("proxy did not start:\n" + self.log())
        return self

    def port(self, name="smtp"):
        return self.ports[name]

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, needle, timeout=10.0):
        """Bounded wait until the log contains |needle|; returns the log."""
        for _ in range(int(timeout / 0.05)):
            text = self.log()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError("log never showed %r:\n%s" % (needle, self.log()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=True):
        """SIGTERM, bounded wait, then kill. With check, raise if the proxy
        crashed, exited non-zero or a sanitizer reported anything."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                if check:
                    raise AssertionError("proxy did not stop on SIGTERM:\n" + self.log())
        code = self.proc.returncode
        self.proc = None
        self.logfile.close()
        if not check:
            return
        text = self.log()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if bad in text:
                raise AssertionError("sanitizer report in proxy log:\n" + text)
        if code != 0:
            raise AssertionError("proxy exited with %r:\n%s" % (code, text))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)


class SmtpConversation:
    """A raw SMTP client over a socket, for what smtplib will not do
    (pipelining in one write, smuggling, overlong lines)."""

    def __init__(self, host, port, timeout=10.0, source=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_reply(self):
        """One complete (possibly multi-line) reply as bytes, or b"" at EOF."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return b"".join(lines) + self.buf
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line + b"\r\n")
            if len(line) < 4 or line[3:4] == b" ":
                return b"".join(lines)

    def read_replies(self, n):
        return [self.read_reply() for _ in range(n)]

    def read_until_eof(self):
        data = self.buf
        self.buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""A private redis-server (Debian ``redis-server``) on a free loopback
port, without persistence: the shared STARTTLS memory of a fleet."""
import os
import socket
import subprocess

from .process import PeerError, _tail, free_port, stop_popen, wait_listening

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """``RedisServer(workdir, password=None)``; ``start()`` runs
    ``redis-server`` in the foreground on 127.0.0.1:<free port> and waits
    until it listens; ``stop()`` ends it (bounded, SIGKILL fallback);
    ``start()`` again restarts it on the same port. ``command(*words)``
    sends one command and returns the raw reply line (for checks and
    ``DEBUG SLEEP``)."""

    def __init__(self, workdir, password=None):
        self.workdir = os.path.abspath(workdir)
        self.password = password
        self.port = free_port()
        self.log_path = os.path.join(self.workdir, "redis.log")
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        os.makedirs(self.workdir, exist_ok=True)
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--logfile", self.log_path, "--enable-debug-command", "local"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        try:
            wait_listening("127.0.0.1", self.port, timeout=timeout, proc=self.proc)
        except Exception as e:
            self.stop()
            raise PeerError("redis-server did not start: %s\n%s" % (e, _tail(self.log_path)))
        return self

    def stop(self, timeout=10.0):
        if self.proc is None:
            return
        stop_popen(self.proc, timeout)
        self.proc = None

    def command(self, *words, timeout=10.0):
        """One command (inline protocol), its first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            if self.password:
                s.sendall(b"AUTH %s\r\n" % self.password.encode())
                s.recv(100)
            s.sendall(" ".join(words).encode() + b"\r\n")
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

"""HAProxy (Debian ``haproxy``) as the TCP load balancer in front of the
proxy: each frontend forwards to one server with ``send-proxy`` (PROXY
protocol v1) or ``send-proxy-v2``, as a real MX fleet's balancer would.
"""
import os
import subprocess

from .process import PeerError, _tail, free_port, stop_popen, wait_listening

HAPROXY = "/usr/sbin/haproxy"


class HaproxyInstance:
    """``HaproxyInstance(workdir, routes)`` where routes is a list of
    ``(name, server_port, mode)`` with mode ``"v1"``, ``"v2"`` or ``None``
    (no PROXY header); the server is ``127.0.0.1:server_port``. Each route
    gets a frontend on a free port of 127.0.0.1: ``port(name)``.
    ``start()`` runs ``haproxy -db -f <cfg>`` (foreground) and waits until
    every frontend listens; ``stop()`` ends it (bounded, SIGKILL fallback).
    """

    def __init__(self, workdir, routes):
        self.workdir = os.path.abspath(workdir)
        self.routes = list(routes)
        self.ports = {name: free_port() for name, _, _ in self.routes}
        self.cfg_path = os.path.join(self.workdir, "haproxy.cfg")
        self.log_path = os.path.join(self.workdir, "haproxy.log")
        self.proc = None

    def port(self, name):
        return self.ports[name]

    def config_text(self):
        lines = [
            "global",
            "    maxconn 4096",
            "defaults",
            "    mode tcp",
            "    timeout connect 5s",
            "    timeout client 60s",
            "    timeout server 60s",
        ]
        for name, server_port, mode in self.routes:
            send = {"v1": " send-proxy", "v2": " send-proxy-v2", None: ""}[mode]
            lines += [
                "frontend fe_%s" % name,
                "    bind 127.0.0.1:%d" % self.ports[name],
                "    default_backend be_%s" % name,
                "backend be_%s" % name,
                "    server s1 127.0.0.1:%d%s" % (server_port, send),
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.cfg_path, "w") as f:
            f.write(self.config_text())
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg_path], stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for name in self.ports:
                wait_listening("127.0.0.1", self.ports[name], timeout=timeout, proc=self.proc)
        except Exception as e:
            self.stop()
            raise PeerError("haproxy did not start: %s\n%s" % (e, _tail(self.log_path)))
        return self

    def stop(self, timeout=10.0):
        if self.proc is None:
            return
        stop_popen(self.proc, timeout)
        self.proc = None
        self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

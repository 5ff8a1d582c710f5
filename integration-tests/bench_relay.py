#!/usr/bin/env python3
"""Benchmark (not a test): the cost of the proxy in the plaintext path.

The same load generator (Postfix's smtp-source) and the same backend
(smtp-sink) are measured directly and through smtp-tls-proxy in one run.
Prints figures; asserts nothing.

  python3 bench_relay.py [--sessions 10] [--messages 5000] [--size 10240]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import SmtpSink  # noqa: E402
from proxyproc import ROOT, Proxy  # noqa: E402


def run_source(port, sessions, messages, size):
    start = time.monotonic()
    subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                    "-f", "a@src.test", "-t", "b@dst.test", "127.0.0.1:%d" % port],
                   check=True, capture_output=True, timeout=1800)
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--size", type=int, default=10240)
    a = ap.parse_args()
    os.environ.setdefault("PROXY_BIN", os.path.join(ROOT, "proxy", "smtp-tls-proxy"))
    d = tempfile.mkdtemp(prefix="stp-bench-")
    try:
        # The sink writes every message to disk in both runs alike.
        sink = SmtpSink(os.path.join(d, "sink"), backlog=100).start()
        try:
            os.makedirs(os.path.join(d, "proxy"))
            proxy = Proxy(os.path.join(d, "proxy"), "%s:%d" % sink.address,
                          proxy={"log_level": "warning"}).start()
            try:
                results = {}
                for name, port in (("direct to smtp-sink", sink.port),
                                   ("through smtp-tls-proxy", proxy.port())):
                    results[name] = run_source(port, a.sessions, a.messages, a.size)
            finally:
                proxy.stop(check=False)
        finally:
            sink.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("bench: %d sessions, %d messages of %d octets, plaintext, loopback, %s"
          % (a.sessions, a.messages, a.size, os.path.basename(os.environ["PROXY_BIN"])))
    for name, secs in results.items():
        print("  %-24s %7.2f s  %8.0f msg/s  %7.1f MB/s"
              % (name, secs, a.messages / secs, a.messages * a.size / secs / 1e6))


if __name__ == "__main__":
    main()

"""A scripted backend for failure cases no real MTA produces on demand:
dying in the middle of DATA, never answering, answering with garbage or
with an endless reply. Real peers (smtp-sink, Postfix) cover everything
else.
"""
import socket
import threading

from peers import free_port


class ScriptedBackend:
    """Accepts connections on 127.0.0.1 and runs handler(conn, received)
    for each in a thread; |received| is a list the handler appends what
    it read to, for the test to inspect."""

    def __init__(self, handler):
        self.handler = handler
        self.port = free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.received = []
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def address(self):
        return "127.0.0.1:%d" % self.port

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(10)
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            t.start()

    def _run(self, conn):
        try:
            self.handler(conn, self.received)
        except OSError:
            pass
        finally:
            conn.close()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def read_line(conn, received):
    """Reads one line (up to LF) from |conn|, records it, returns it."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    received.append(data)
    return data


def serve_until_data(conn, received):
    """Greets and answers EHLO/MAIL/RCPT like a small MTA, up to and
    including the 354 for DATA. Returns True when DATA was reached."""
    conn.sendall(b"220 fake ESMTP\r\n")
    for _ in range(20):
        line = read_line(conn, received)
        if not line:
            return False
        verb = line[:4].upper()
        if verb == b"EHLO":
            conn.sendall(b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            conn.sendall(b"354 go ahead\r\n")
            return True
        else:
            conn.sendall(b"250 2.0.0 ok\r\n")
    return False

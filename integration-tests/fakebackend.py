"""Scripted backends for what no real MTA produces on demand: dying in
the middle of DATA, never answering, answering with garbage or with an
endless reply, reading lines into fixed buffers like a legacy C MTA,
counting a message too big to keep, advertising what a legacy MTA might
(its own STARTTLS, CHUNKING, XCLIENT, AUTH). Real peers (smtp-sink,
Postfix, OpenSMTPD, Exim) cover everything else.

ScriptedBackend runs a handler(conn, received) per connection; the rest
are such handlers (or make them), and LineReader reads as they do.
"""
import socket
import threading
import time

from peers import free_port


class ScriptedBackend:
    """Accepts connections on 127.0.0.1 and runs handler(conn, received)
    for each in a thread; |received| is a list the handler appends what
    it read to, for the test to inspect."""

    def __init__(self, handler, sock=None):
        """|sock|: a listening socket made by the caller (a unix one, say)
        instead of a TCP port on 127.0.0.1."""
        self.handler = handler
        if sock is None:
            self.port = free_port()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(16)
        else:
            self.port = None
        self.sock = sock
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


class LineReader:
    """Reads a socket the way a C MTA reading with fgets(buf, size) does:
    a line ends at LF or after size - 1 bytes, whichever comes first."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def read(self, size):
        for _ in range(100000):
            lf = self.buf.find(b"\n", 0, size - 1)
            if lf >= 0:
                line, self.buf = self.buf[:lf + 1], self.buf[lf + 1:]
                return line
            if len(self.buf) >= size - 1:
                line, self.buf = self.buf[:size - 1], self.buf[size - 1:]
                return line
            chunk = self.conn.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        return b""


def legacy_mta(record, ehlo=b"250-legacy\r\n250 PIPELINING\r\n", strip_nul=False,
               auth=False, ok=b"250 2.0.0 ok\r\n", stall_in_data=None):
    """A legacy MTA: commands are read into a 512-octet buffer, message
    lines into a 1000-octet one, and every piece is run as what it says.
    |record| gets "verbs" (every command piece, upper-cased first word),
    "lines" (the raw pieces) and "messages" (each queued body). With
    |strip_nul| it drops NUL before looking for the end of data."""
    record.setdefault("verbs", [])
    record.setdefault("lines", [])
    record.setdefault("messages", [])

    def handler(conn, received):
        r = LineReader(conn)
        conn.sendall(b"220 legacy ESMTP\r\n")
        for _ in range(200000):
            # An MTA that offers AUTH reads its lines as RFC 4954 asks.
            line = r.read(16384 if auth else 512)
            if not line:
                return
            record["lines"].append(line)
            words = line.strip().split()
            verb = words[0].upper() if words else b""
            record["verbs"].append(verb)
            if verb == b"EHLO":
                conn.sendall(ehlo)
            elif verb == b"XCLIENT":
                conn.sendall(b"220 legacy ESMTP\r\n")
            elif verb == b"AUTH" and auth:
                conn.sendall(b"334 " + b"C" * 6000 + b"\r\n")
                response = r.read(16384)
                record["lines"].append(response)
                conn.sendall(b"235 2.7.0 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                for _ in range(300 if stall_in_data else 0):
                    if stall_in_data():
                        return
                    time.sleep(0.1)
                body = []
                for _ in range(200000):
                    piece = r.read(1000)
                    if not piece:
                        return
                    if strip_nul:
                        piece = piece.replace(b"\0", b"")
                    if piece in (b".\r\n", b".\n"):
                        break
                    body.append(piece)
                record["messages"].append(b"".join(body))
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(ok)
    return handler


def slow_greeting_mta(record, delay):
    """Greets only after |delay| seconds, then behaves like legacy_mta
    without PIPELINING."""
    inner = legacy_mta(record, ehlo=b"250-slow\r\n250 8BITMIME\r\n")

    def handler(conn, received):
        time.sleep(delay)
        inner(conn, received)
    return handler


def counting_mta(record):
    """Takes a message of any size without keeping it: counts its bytes,
    and keeps its first and last 64 KiB."""
    def handler(conn, received):
        conn.settimeout(60)
        conn.sendall(b"220 counting ESMTP\r\n")
        r = LineReader(conn)
        for _ in range(100):
            line = r.read(4096)
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-counting\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                head, tail, total = r.buf, b"", len(r.buf)
                tail = r.buf
                for _ in range(1000000):
                    if tail.endswith(b"\r\n.\r\n"):
                        break
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        return
                    total += len(chunk)
                    if len(head) < 65536:
                        head += chunk[:65536]
                    tail = (tail + chunk)[-65536:]
                record["total"] = total
                record["head"] = head
                r.buf = b""
                conn.sendall(b"250 2.0.0 counted\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 2.0.0 ok\r\n")
    return handler


class MiniMta:
    """A small stateful MTA for a ScriptedBackend: it records every line it
    reads, advertises what a legacy MTA might (its own STARTTLS, CHUNKING,
    XCLIENT, XFORWARD, AUTH), enforces the MAIL/RCPT/DATA order (RSET and
    EHLO clear the envelope, as RFC 5321 4.1.4 says), answers AUTH with 235
    once per connection and any further AUTH with 503 (RFC 4954 4; like
    Postfix, RSET and EHLO do not undo it), and keeps the messages it
    accepted."""

    EHLO = (b"250-legacy.backend.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
            b"250-STARTTLS\r\n250-CHUNKING\r\n250-XCLIENT NAME ADDR PROTO HELO\r\n"
            b"250-XFORWARD NAME ADDR PROTO HELO\r\n250-AUTH PLAIN LOGIN\r\n"
            b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")

    def __init__(self):
        self.lines = []
        self.messages = []

    def commands(self):
        """The lines read (commands and SASL data), without line ends."""
        return [l.rstrip(b"\r\n") for l in self.lines]

    def handle(self, conn, received):
        buf = bytearray()

        def read_more():
            chunk = conn.recv(65536)
            buf.extend(chunk)
            return bool(chunk)

        def line():
            for _ in range(10000):
                i = buf.find(b"\n")
                if i >= 0:
                    l = bytes(buf[:i + 1])
                    del buf[:i + 1]
                    self.lines.append(l)
                    return l
                if not read_more():
                    return b""
            return b""

        def message():
            for _ in range(10000):
                i = buf.find(b"\r\n.\r\n")
                if i >= 0:
                    data = bytes(buf[:i + 5])
                    del buf[:i + 5]
                    return data
                if not read_more():
                    return None
            return None

        conn.sendall(b"220 legacy.backend.test ESMTP\r\n")
        mail = rcpt = authenticated = False
        for _ in range(500):
            cmd = line()
            if not cmd:
                return
            words = cmd.rstrip(b"\r\n").split(b" ")
            verb = words[0].split(b":")[0].upper()
            if verb in (b"EHLO", b"HELO"):
                mail = rcpt = False
                conn.sendall(self.EHLO if verb == b"EHLO" else b"250 legacy.backend.test\r\n")
            elif verb == b"RSET":
                mail = rcpt = False
                conn.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == b"MAIL":
                mail, rcpt = True, False
                conn.sendall(b"250 2.1.0 Ok\r\n")
            elif verb == b"RCPT":
                if not mail:
                    conn.sendall(b"503 5.5.1 Error: need MAIL command\r\n")
                else:
                    rcpt = True
                    conn.sendall(b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                if not rcpt:
                    conn.sendall(b"503 5.5.1 Error: need RCPT command\r\n")
                    continue
                conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                data = message()
                if data is None:
                    return
                self.messages.append(data)
                mail = rcpt = False
                conn.sendall(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"AUTH":
                if authenticated:
                    conn.sendall(b"503 5.5.1 Error: already authenticated\r\n")
                    continue
                mech = words[1].upper() if len(words) > 1 else b""
                if mech == b"PLAIN" and len(words) < 3:
                    conn.sendall(b"334 \r\n")
                    line()
                elif mech == b"LOGIN":
                    if len(words) < 3:
                        conn.sendall(b"334 VXNlcm5hbWU6\r\n")
                        line()
                    conn.sendall(b"334 UGFzc3dvcmQ6\r\n")
                    line()
                authenticated = True
                conn.sendall(b"235 2.7.0 Authentication successful\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                conn.sendall(b"250 2.0.0 Ok\r\n")

"""The plaintext relay: a message crosses the proxy to a real backend with
the proxy's headers, forged headers removed, PIPELINING intact, and
nothing the backend did not accept is acknowledged to the client.
"""
import hashlib
import os
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from fakebackend import ScriptedBackend, read_line, serve_until_data
from mailcheck import header_block, header_values
from peers import SmtpSink
from proxyproc import Proxy, SmtpConversation

STATUS = b"X-TLS-Status"


class RelayTest(unittest.TestCase):
    """Each test gets an smtp-sink backend and a proxy in a fresh directory."""

    sink_args = ()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-relay-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink"), extra_args=self.sink_args)
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.proxy = Proxy(os.path.join(self.dir, "proxy"), "%s:%d" % self.sink.address)
        os.makedirs(self.proxy.workdir)
        self.proxy.start()
        # Cleanups run last-in first-out: clients a test opens close
        # before the proxy stops, and the proxy before the sink.
        self.addCleanup(self.proxy.stop)

    def conv(self):
        c = SmtpConversation("127.0.0.1", self.proxy.port())
        self.addCleanup(c.close)
        return c

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.proxy.port(), timeout=10)
        self.addCleanup(s.close)
        return s

    def only_message(self):
        msgs = self.sink.wait_messages(1)
        time.sleep(0.2)  # a second (smuggled) message would show up by now
        msgs = self.sink.parsed_messages()
        self.assertEqual(len(msgs), 1, msgs)
        return msgs[0]["data_crlf"]


class MessageHeadersTest(RelayTest):

    def test_swaks_message_arrives_with_received_and_status_header_added_once(self):
        out = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % self.proxy.port(), "--from", "a@src.test",
             "--to", "b@dst.test", "--helo", "client.src.test", "--body", "hello"],
            capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        data = self.only_message()
        received = [v for v in header_values(data, "Received") if "smtp-tls-proxy" in v]
        self.assertEqual(len(received), 1, data)
        self.assertIn("from client.src.test (unknown [127.0.0.1])", received[0])
        self.assertIn("by mx.example.test (smtp-tls-proxy) with ESMTP id", received[0])
        status = header_values(data, STATUS)
        self.assertEqual(len(status), 1, data)
        self.assertIn("tls=none", status[0])
        self.assertIn("listener=smtp", status[0])
        self.assertIn("mode=none", status[0])
        self.assertIn("client=127.0.0.1", status[0])
        self.assertIn("port=%d" % self.proxy.port(), status[0])
        self.assertIn(b"\r\n\r\nhello", data)

    def test_helo_client_gets_received_with_smtp_not_esmtp(self):
        c = self.conv()
        c.read_reply()
        c.send(b"HELO old.src.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertTrue(c.read_reply().startswith(b"354"))
        c.send(b"Subject: old\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        data = self.only_message()
        received = [v for v in header_values(data, "Received") if "smtp-tls-proxy" in v]
        self.assertRegex(received[0], r"with SMTP id")

    def test_forged_status_header_in_other_case_and_folded_is_removed(self):
        msg = (b"From: a@src.test\r\n"
               b"x-tls-STATUS: tls=TLSv1.3; cipher=forged\r\n"
               b"\tcontinued=forged\r\n"
               b"  more=forged\r\n"
               b"Subject: keep me\r\n"
               b"X-TLS-Status : tls=TLSv1.3 second forgery\r\n"
               b"\r\n"
               b"X-TLS-Status: in the body, kept\r\n")
        s = self.smtp()
        s.sendmail("a@src.test", ["b@dst.test"], msg)
        data = self.only_message()
        head = header_block(data)
        self.assertNotIn(b"forged", head)
        self.assertNotIn(b"second forgery", head)
        self.assertIn(b"Subject: keep me", head)
        self.assertEqual(len(header_values(data, STATUS)), 1)
        self.assertIn(b"tls=none", head)
        self.assertIn(b"X-TLS-Status: in the body, kept", data.split(b"\r\n\r\n", 1)[1])
        self.proxy.wait_log("forged_status_headers=2")

    def test_lines_beginning_with_dots_arrive_intact(self):
        body = b"Subject: dots\r\n\r\n.one dot\r\n..two dots\r\n.\r\n. \r\nend\r\n"
        s = self.smtp()
        s.sendmail("a@src.test", ["b@dst.test"], body)  # smtplib stuffs dots
        data = self.only_message()
        self.assertIn(b"\r\n.one dot\r\n..two dots\r\n.\r\n. \r\nend\r\n", data)

    def test_large_message_arrives_byte_identical(self):
        lines = [("line %06d " % i).encode() + os.urandom(30).hex().encode()
                 for i in range(120000)]  # about 9 MB: exercises backpressure
        body = b"Subject: big\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
        s = self.smtp()
        s.sendmail("a@src.test", ["b@dst.test"], body)
        data = self.only_message()
        got_body = data.split(b"\r\n\r\n", 1)[1]
        want_body = body.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(hashlib.sha256(got_body[:len(want_body)]).hexdigest(),
                         hashlib.sha256(want_body).hexdigest())
        self.assertEqual(got_body[len(want_body):].strip(b"\r\n"), b"")


class PipeliningTest(RelayTest):

    def test_whole_transaction_in_one_write_yields_one_message_and_all_replies_in_order(self):
        c = self.conv()
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"EHLO pipe.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n"
               b"RCPT TO:<c@dst.test>\r\nDATA\r\nSubject: one write\r\n\r\nbody\r\n.\r\n"
               b"QUIT\r\n")
        replies = c.read_replies(7)
        codes = [r[:3] for r in replies]
        self.assertEqual(codes, [b"250", b"250", b"250", b"250", b"354", b"250", b"221"],
                         replies)
        data = self.only_message()
        self.assertIn(b"Subject: one write", data)
        meta = self.sink.parsed_messages()[0]["meta"]
        self.assertEqual(len(meta["x-rcpt-args"]), 2)

    def test_pipelined_group_then_body_after_354(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO pipe.src.test\r\n")
        ehlo = c.read_reply()
        self.assertIn(b"PIPELINING", ehlo)
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"354"])
        c.send(b"Subject: group\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.assertIn(b"Subject: group", self.only_message())

    def test_two_messages_in_one_session_each_get_their_own_headers(self):
        s = self.smtp()
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: first\r\n\r\none\r\n")
        s.sendmail("a@src.test", ["c@dst.test"], b"Subject: second\r\n\r\ntwo\r\n")
        s.quit()
        self.sink.wait_messages(2)
        msgs = [m["data_crlf"] for m in self.sink.parsed_messages()]
        self.assertEqual(len(msgs), 2)
        ids = set()
        for m in msgs:
            self.assertEqual(len(header_values(m, STATUS)), 1)
            rec = [v for v in header_values(m, "Received") if "smtp-tls-proxy" in v]
            self.assertEqual(len(rec), 1)
            ids.add(rec[0].split(" id ")[1].split(";")[0].strip())
        self.assertEqual(len(ids), 2, "each message has its own id")


class SmugglingTest(RelayTest):

    def test_bare_lf_dot_lf_smuggling_yields_exactly_one_message(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO evil.src.test\r\n")
        c.read_reply()
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"354"])
        c.send(b"Subject: outer\r\n\r\nouter body\n.\nMAIL FROM:<admin@dst.test>\n"
               b"RCPT TO:<victim@dst.test>\nDATA\nSubject: smuggled\n\nsmuggled\n.\r\n"
               b"\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"QUIT\r\n")
        c.read_reply()
        data = self.only_message()
        meta = self.sink.parsed_messages()[0]["meta"]
        self.assertEqual(meta["x-rcpt-args"], ["<b@dst.test>"])
        # The smuggled text stayed inside the one message, with no bare LF.
        self.assertIn(b"MAIL FROM:<admin@dst.test>\r\n", data)

    def test_cr_dot_cr_smuggling_yields_exactly_one_message(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO evil.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(4)],
                         [b"250", b"250", b"250", b"354"])
        c.send(b"Subject: outer\r\n\r\nouter\r.\rMAIL FROM:<x@dst.test>\rRCPT TO:<v@dst.test>\r"
               b"DATA\rsmuggled\r.\r\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        self.only_message()


class CommandLimitsTest(RelayTest):

    def test_overlong_command_line_gets_500_and_close(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO long.src.test\r\n")
        c.read_reply()
        c.send(b"MAIL FROM:<" + b"a" * 5000 + b"@src.test>\r\n")
        reply = c.read_reply()
        self.assertTrue(reply.startswith(b"500 5.5.2"), reply)
        self.assertEqual(c.read_until_eof(), b"")
        self.proxy.wait_log("result=line_too_long")

    def test_command_at_rfc_limit_is_relayed(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO limit.src.test\r\n")
        c.read_reply()
        local = b"a" * (512 - len(b"MAIL FROM:<@src.test>\r\n"))
        c.send(b"MAIL FROM:<" + local + b"@src.test>\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))

    def test_xclient_and_xforward_from_client_are_refused_and_never_reach_backend(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO spoof.src.test\r\n")
        ehlo = c.read_reply()
        for kw in (b"XCLIENT", b"XFORWARD", b"CHUNKING", b"STARTTLS"):
            self.assertNotIn(kw, ehlo)
        c.send(b"XCLIENT ADDR=10.1.2.3 NAME=trusted.example\r\n")
        self.assertTrue(c.read_reply().startswith(b"550 5.7.0"))
        c.send(b"XFORWARD ADDR=10.1.2.3\r\n")
        self.assertTrue(c.read_reply().startswith(b"550 5.7.0"))
        c.send(b"MAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"354"])
        c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        c.read_reply()
        self.sink.wait_messages(1)
        meta = self.sink.parsed_messages()[0]["meta"]
        self.assertEqual(meta["x-client-addr"], "127.0.0.1")

    def test_bdat_is_refused_and_its_chunk_never_runs_as_commands(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO chunk.src.test\r\n")
        c.read_reply()
        chunk = b"RSET\r\nMAIL FROM:<x@y>\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"NOOP\r\n")
        self.assertTrue(c.read_reply().startswith(b"502 5.5.1"))
        self.assertTrue(c.read_reply().startswith(b"250"))  # the NOOP, not the chunk

    def test_mail_size_parameter_is_raised_by_the_header_room(self):
        c = self.conv()
        c.read_reply()
        c.send(b"EHLO size.src.test\r\nMAIL FROM:<a@src.test> SIZE=1000\r\n"
               b"RCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(4)],
                         [b"250", b"250", b"250", b"354"])
        c.send(b"Subject: s\r\n\r\ns\r\n.\r\n")
        c.read_reply()
        self.sink.wait_messages(1)
        meta = self.sink.parsed_messages()[0]["meta"]
        self.assertIn("SIZE=3048", meta["x-mail-args"])


class RejectingBackendTest(RelayTest):
    sink_args = ("-f", "RCPT", "-B", "550 5.1.1 No such user here")

    def test_backend_rcpt_rejection_reaches_client_unchanged(self):
        s = self.smtp()
        s.ehlo("reject.src.test")
        s.mail("a@src.test")
        code, text = s.rcpt("nobody@dst.test")
        self.assertEqual(code, 550)
        self.assertEqual(text, b"5.1.1 No such user here")
        code, _ = s.docmd("DATA")
        self.assertEqual(code, 503)
        self.assertEqual(self.sink.parsed_messages(), [])


class BackendFailureTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-backend-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start_proxy(self, backend, **proxy_keys):
        p = Proxy(self.dir, backend, proxy=proxy_keys)
        p.start()
        self.addCleanup(p.stop)
        return p

    def test_backend_down_gives_421_greeting_and_close(self):
        from peers import free_port
        p = self.start_proxy("127.0.0.1:%d" % free_port())
        c = SmtpConversation("127.0.0.1", p.port())
        self.addCleanup(c.close)
        reply = c.read_reply()
        self.assertTrue(reply.startswith(b"421 4.4.1 mx.example.test"), reply)
        self.assertEqual(c.read_until_eof(), b"")
        p.wait_log("event=backend_connect_failed")

    def test_backend_dying_mid_data_never_gets_a_250_to_the_client(self):
        def handler(conn, received):
            if serve_until_data(conn, received):
                read_line(conn, received)  # one body line, then die
        with ScriptedBackend(handler) as b:
            p = self.start_proxy(b.address())
            s = smtplib.SMTP("127.0.0.1", p.port(), timeout=10)
            self.addCleanup(s.close)
            s.ehlo("x.src.test")
            s.mail("a@src.test")
            s.rcpt("b@dst.test")
            code, _ = s.docmd("DATA")
            self.assertEqual(code, 354)
            s.send(b"Subject: doomed\r\n\r\n" + b"x" * 100 + b"\r\n")
            time.sleep(0.3)
            try:
                s.send(b"more\r\n.\r\n")
                code, text = s.getreply()
            except (smtplib.SMTPServerDisconnected, OSError):
                code = None
            self.assertNotEqual(code, 250)
            self.assertIn(code, (421, None))
            p.wait_log("result=backend_closed")

    def test_bare_line_endings_never_reach_the_backend_raw(self):
        def handler(conn, received):
            if not serve_until_data(conn, received):
                return
            data = b""
            for _ in range(1000):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data.endswith(b"\r\n.\r\n"):
                    break
            received.append(data)
            conn.sendall(b"250 2.0.0 queued\r\n")
            read_line(conn, received)
            conn.sendall(b"221 bye\r\n")
        with ScriptedBackend(handler) as b:
            p = self.start_proxy(b.address())
            c = SmtpConversation("127.0.0.1", p.port())
            self.addCleanup(c.close)
            c.read_reply()
            c.send(b"EHLO x.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
            self.assertEqual([r[:3] for r in c.read_replies(4)],
                             [b"250", b"250", b"250", b"354"])
            c.send(b"Subject: endings\r\n\r\nlf only\nbare cr\rmixed\n\r.\n.\r\r\n.\r\n")
            self.assertTrue(c.read_reply().startswith(b"250"))
            c.send(b"QUIT\r\n")
            c.read_reply()
            body = b.received[-2] if b.received[-1].startswith(b"QUIT") else b.received[-1]
            self.assertRegex(body, rb"\r\n\.\r\n$")
            stripped = body.replace(b"\r\n", b"")
            self.assertNotIn(b"\n", stripped, body)
            self.assertNotIn(b"\r", stripped, body)
            # Exactly one end-of-data sequence, at the very end.
            self.assertEqual(body.count(b"\r\n.\r\n"), 1, body)
            self.assertIn(b"lf only\r\nbare cr\r\nmixed\r\n", body)

    def test_backend_silent_after_greeting_gets_421_timeout(self):
        def handler(conn, received):
            conn.sendall(b"220 fake ESMTP\r\n")
            read_line(conn, received)
            for _ in range(50):  # never answer, but stay connected (bounded)
                if not conn.recv(1024):
                    return
        with ScriptedBackend(handler) as b:
            p = self.start_proxy(b.address(), reply_timeout="1s")
            c = SmtpConversation("127.0.0.1", p.port())
            self.addCleanup(c.close)
            c.read_reply()
            c.send(b"EHLO x.src.test\r\n")
            reply = c.read_reply()
            self.assertTrue(reply.startswith(b"421 4.4.2"), reply)
            p.wait_log("event=backend_timeout")

    def test_backend_garbage_reply_gives_421_not_garbage(self):
        def handler(conn, received):
            conn.sendall(b"220 fake ESMTP\r\n")
            read_line(conn, received)
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            read_line(conn, received)
        with ScriptedBackend(handler) as b:
            p = self.start_proxy(b.address())
            c = SmtpConversation("127.0.0.1", p.port())
            self.addCleanup(c.close)
            c.read_reply()
            c.send(b"EHLO x.src.test\r\n")
            reply = c.read_reply()
            self.assertTrue(reply.startswith(b"421 4.3.0"), reply)
            self.assertNotIn(b"HTTP", reply)

    def test_backend_endless_multiline_reply_is_cut_off_with_421(self):
        def handler(conn, received):
            conn.sendall(b"220 fake ESMTP\r\n")
            read_line(conn, received)
            for _ in range(2000):
                conn.sendall(b"250-" + b"x" * 60 + b"\r\n")
        with ScriptedBackend(handler) as b:
            p = self.start_proxy(b.address())
            c = SmtpConversation("127.0.0.1", p.port())
            self.addCleanup(c.close)
            c.read_reply()
            c.send(b"EHLO x.src.test\r\n")
            reply = c.read_reply()
            self.assertTrue(reply.startswith(b"421 4.3.0"), reply[:200])


if __name__ == "__main__":
    unittest.main()

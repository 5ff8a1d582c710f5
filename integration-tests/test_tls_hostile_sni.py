"""Hostile SNI: whatever a client sends as its server name, neither the
injected headers nor the log can be forged or broken with it.
"""
import re
import unittest

from mailcheck import header_values, squeeze, status_pairs
from tlsharness import SAFE_SNI, STATUS, TlsTest, proxy_received


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


if __name__ == "__main__":
    unittest.main()

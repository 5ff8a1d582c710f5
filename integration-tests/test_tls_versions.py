"""TLS versions and ciphers: which protocol versions each listener kind
takes, the min_tls_version, ciphers and groups settings, the default
cipher policies, and IANA cipher names in the headers.
"""
import ssl
import unittest
import warnings

from tlsharness import TlsTest, iana_cipher_names


def tls11_context():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
        c.minimum_version = ssl.TLSVersion.TLSv1_1
        c.maximum_version = ssl.TLSVersion.TLSv1_1
    return c


class TlsVersionTest(TlsTest):

    def test_tls11_client_refused_on_submission_with_protocol_reason(self):
        code, out = self.s_client(self.port("submission"), "-tls1_1",
                                  "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertNotEqual(code, 0, out)
        self.assertNotIn("BEGIN CERTIFICATE", out)
        self.wait_log_re(r"event=tls_failed client=127\.0\.0\.1 "
                         r"listener=submission mode=starttls reason=\S*"
                         r"(UNSUPPORTED_PROTOCOL|VERSION)")
        # The same with Python's ssl, on the implicit listener too.
        c = self.conv("submissions")
        with self.assertRaises((ssl.SSLError, OSError)):
            self.wrap(c, "mx.example.test", tls11_context())
        self.assertRegex(self.session_line(c, "event=tls_failed"),
                         r"listener=submissions mode=implicit reason=\S*"
                         r"(UNSUPPORTED_PROTOCOL|VERSION)")

    def test_tls11_client_accepted_on_smtp_listener_and_header_says_tlsv1_1(self):
        code, out = self.s_client(self.port("smtp"), "-tls1_1",
                                  "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"Protocol\s*: TLSv1\.1")
        c, _, _ = self.starttls("smtp", ctx=tls11_context())
        self.assertEqual(c.sock.version(), "TLSv1.1")
        self.send_message(c)
        pairs = self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                        sni="mx.example.test", version="TLSv1.1")
        self.assertEqual(pairs["cipher"], iana_cipher_names()[c.sock.cipher()[0]])

    def test_tls12_cipher_is_named_by_its_iana_name(self):
        ctx = self.ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c, _, _ = self.starttls("smtp", ctx=ctx)
        openssl_name = c.sock.cipher()[0]
        self.send_message(c)
        pairs = self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                        sni="mx.example.test", version="TLSv1.2")
        self.assertEqual(pairs["cipher"], iana_cipher_names()[openssl_name])
        self.assertNotEqual(pairs["cipher"], openssl_name)


class TlsPolicyConfigTest(TlsTest):
    listeners = (
        {"name": "smtp", "kind": "smtp", "tls": "starttls", "min_tls_version": "TLSv1.3"},
        {"name": "submission", "kind": "submission", "tls": "starttls",
         "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384"},
        {"name": "submissions", "kind": "submissions"},
    )
    tls_section = "\n[tls]\ngroups = P-256\n"

    def test_min_tls_version_on_smtp_listener_refuses_tls12(self):
        ctx = self.ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c = self.conv("smtp")
        self.expect(c, b"220")
        c.send(b"EHLO client.src.test\r\n")
        self.expect(c, b"250")
        c.send(b"STARTTLS\r\n")
        self.expect(c, b"220 2.0.0")
        with self.assertRaises((ssl.SSLError, OSError)):
            self.wrap(c, "mx.example.test", ctx)
        self.assertRegex(self.session_line(c, "event=tls_failed"),
                         r"listener=smtp mode=starttls reason=\S*(UNSUPPORTED_PROTOCOL|VERSION)")

    def test_ciphers_setting_limits_tls12_suites(self):
        ctx = self.ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c, _, _ = self.starttls("submission", ctx=ctx)
        self.assertEqual(c.sock.cipher()[0], "ECDHE-ECDSA-AES256-GCM-SHA384")
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submission", "starttls",
                                sni="mx.example.test", version="TLSv1.2",
                                cipher="TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384")

    def test_groups_setting_decides_the_key_exchange_group(self):
        c, _ = self.implicit()
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "submissions", "implicit",
                                sni="mx.example.test", group="P-256")


class DefaultCipherPolicyTest(TlsTest):
    """Submission kinds default to forward-secret suites; port 25 keeps a
    broad list, because any TLS beats the plaintext fallback."""

    def rsa_kx_context(self):
        ctx = self.ctx(verify=False)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-GCM-SHA256")  # RSA key exchange, no forward secrecy
        return ctx

    def test_submissions_refuses_a_client_offering_only_non_forward_secret_suites(self):
        with self.assertRaises((ssl.SSLError, OSError)):
            self.implicit(ctx=self.rsa_kx_context())
        self.wait_log_re(r"listener=submissions mode=implicit reason=\S*NO_SHARED_CIPHER")

    def test_smtp_listener_accepts_a_client_offering_only_non_forward_secret_suites(self):
        c, _, _ = self.starttls("smtp", ctx=self.rsa_kx_context())
        self.assertEqual(c.sock.cipher()[0], "AES128-GCM-SHA256")
        self.send_message(c)
        self.assert_tls_headers(self.only_message()["data_crlf"], "smtp", "starttls",
                                sni="mx.example.test", version="TLSv1.2",
                                cipher="TLS_RSA_WITH_AES_128_GCM_SHA256", kx_group=False)


if __name__ == "__main__":
    unittest.main()

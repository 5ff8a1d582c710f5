"""Certificates chosen by SNI and by what the client can verify (ECDSA or
RSA), and the names = and default = settings.
"""
import unittest

from tlsharness import CA, TlsTest, body_of_pem, cert, describe_cert


class CertificateSelectionTest(TlsTest):

    def check_served(self, servername, want_cn, want_kind="ECDSA", verify=True, *extra):
        args = list(extra)
        args += ["-noservername"] if servername is None else ["-servername", servername]
        if verify:
            args += ["-CAfile", CA, "-verify_return_error", "-verify_hostname", servername]
        cn, kind, code, out = self.served_certificate(self.port("smtp"), *args)
        self.assertEqual((cn, kind), (want_cn, want_kind), out)
        if verify:
            self.assertEqual(code, 0, out)
            self.assertIn("Verify return code: 0 (ok)", out)
        return out

    def test_sni_selects_certificate_by_exact_name_and_chain_verifies(self):
        self.check_served("mx.example.test", "mx.example.test")
        self.check_served("mail.other.test", "mail.other.test")

    def test_sni_name_match_is_case_insensitive(self):
        self.check_served("MAIL.Other.TEST", "mail.other.test")

    def test_sni_wildcard_matches_exactly_one_label(self):
        self.check_served("a.wild.test", "*.wild.test", "RSA")
        # b.c.wild.test is not covered by *.wild.test (RFC 6125 6.4.3).
        self.check_served("b.c.wild.test", "mx.example.test", verify=False)
        self.check_served("wild.test", "mx.example.test", verify=False)

    def test_unknown_or_missing_sni_gets_the_default_certificate(self):
        self.check_served("unknown.test", "mx.example.test", verify=False)
        self.check_served(None, "mx.example.test", verify=False)
        # The default certificate is still a valid chain to the test CA.
        code, out = self.s_client(self.port("smtp"), "-noservername", "-CAfile", CA,
                                  "-verify_return_error")
        self.assertEqual(code, 0, out)

    def test_tls12_client_offering_only_ecdhe_rsa_suites_gets_rsa_certificate(self):
        out = self.check_served("mx.example.test", "mx.example.test", "RSA", True,
                                "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertIn("ECDHE-RSA-AES128-GCM-SHA256", out)

    def test_tls13_client_with_only_rsa_signature_algorithms_gets_rsa_certificate(self):
        out = self.check_served("mx.example.test", "mx.example.test", "RSA", True,
                                "-tls1_3", "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256")
        self.assertRegex(out, r"Protocol\s*: TLSv1\.3|New, TLSv1\.3")

    def test_tls13_client_accepting_only_p384_ecdsa_gets_rsa_certificate(self):
        # In TLS 1.3 an ECDSA signature algorithm names its curve (RFC 8446
        # 4.2.3): ecdsa_secp384r1_sha384 cannot be made with the P-256
        # key, so only the RSA certificate can complete this handshake.
        self.check_served("mx.example.test", "mx.example.test", "RSA", True,
                          "-tls1_3", "-sigalgs", "ecdsa_secp384r1_sha384:rsa_pss_rsae_sha256")
        self.assertNotIn("NO_COMMON_SIGNATURE_ALGORITHMS", self.proxy.log())

    def test_default_client_gets_ecdsa_certificate_for_dual_key_name(self):
        self.check_served("mx.example.test", "mx.example.test", "ECDSA")
        self.check_served("mx.example.test", "mx.example.test", "ECDSA", True, "-tls1_2")

    def test_implicit_listener_selects_by_sni_too(self):
        code, out = self.s_client(self.port("submissions"), "-servername", "mail.other.test",
                                  "-CAfile", CA, "-verify_return_error",
                                  "-verify_hostname", "mail.other.test", starttls=False)
        self.assertEqual(code, 0, out)
        self.assertEqual(describe_cert(body_of_pem(out))[0], "mail.other.test")


class CertificateNamesConfigTest(TlsTest):
    """names = replaces the certificate's own names; default = picks the
    certificate for clients without (or with an unknown) SNI."""
    certificates = """
[certificate mx-ecdsa]
cert = {chain}
key = {ecdsa_key}

[certificate other]
cert = {other}
key = {other_key}
names = mail.alias.test, *.alias.test
default = yes
""".format(chain=cert("mx-ecdsa-chain.crt"), ecdsa_key=cert("mx-ecdsa.key"),
           other=cert("other.crt"), other_key=cert("other.key"))

    def served_cn(self, *args):
        code, out = self.s_client(self.port("smtp"), *args)
        pem = body_of_pem(out)
        self.assertIsNotNone(pem, out)
        return describe_cert(pem)[0]

    def test_names_and_default_settings_decide_the_certificate(self):
        self.assertEqual(self.served_cn("-servername", "mail.alias.test"), "mail.other.test")
        self.assertEqual(self.served_cn("-servername", "x.alias.test"), "mail.other.test")
        self.assertEqual(self.served_cn("-servername", "mx.example.test"), "mx.example.test")
        self.assertEqual(self.served_cn("-noservername"), "mail.other.test")
        self.assertEqual(self.served_cn("-servername", "nowhere.test"), "mail.other.test")


if __name__ == "__main__":
    unittest.main()

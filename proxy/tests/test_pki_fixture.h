/*
 * test_pki_fixture.h - the fixed certificates and OCSP response of
 * test_pki_fixture.c.
 */
#ifndef SMTP_TLS_PROXY_TEST_PKI_FIXTURE_H
#define SMTP_TLS_PROXY_TEST_PKI_FIXTURE_H

#include <stddef.h>

extern const unsigned char fixture_ca_der[];
extern const size_t fixture_ca_der_len;
extern const unsigned char fixture_leaf_der[];
extern const size_t fixture_leaf_der_len;
extern const unsigned char fixture_rsa_der[];
extern const size_t fixture_rsa_der_len;
extern const unsigned char fixture_ocsp_der[];
extern const size_t fixture_ocsp_der_len;

/* When the fixture response was made, and how long it is current. */
#define FIXTURE_OCSP_THIS_UPDATE 1796235862
#define FIXTURE_OCSP_NEXT_UPDATE (FIXTURE_OCSP_THIS_UPDATE + 7 * 86400)

#endif

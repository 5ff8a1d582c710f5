"""Country and AS tagging with MaxMind DB files made by the tests
(GeoLite2 and ip-location-db schemas), and the source scope. GeoIP
never affects the mail: a miss or a missing database only leaves the
field out."""
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import unittest

from mailcheck import header_values
from mmdb import write_mmdb
from peers import SmtpSink
from proxyproc import PROXY_BIN, Proxy

GEOLITE_COUNTRY = [
    ("127.0.0.2/32", {"country": {"iso_code": "DE"}}),
    ("127.0.0.4/32", {"registered_country": {"iso_code": "se"}}),
    ("127.0.0.5/32", {"country": {"iso_code": "D\r\nX-Evil: 1"}}),
    ("::1/128", {"country": {"iso_code": "FR"}}),
]
FLAT_COUNTRY = [("127.0.0.2/32", {"country_code": "NL"})]
GEOLITE_ASN = [("127.0.0.2/32", {"autonomous_system_number": 64500,
                                 "autonomous_system_organization": "Example Net, Inc."})]


class GeoipTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-geoip-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)

    def start_proxy(self, geoip_section):
        pdir = tempfile.mkdtemp(dir=self.dir)
        p = Proxy(pdir, "%s:%d" % self.sink.address,
                  listeners=[{"name": "smtp", "kind": "smtp"},
                             {"name": "smtp6", "kind": "smtp", "host": "::1"}],
                  extra=geoip_section)
        p.start()
        self.addCleanup(p.stop)
        return p

    def db(self, name, db_type, entries):
        return write_mmdb(os.path.join(self.dir, name), db_type, entries)

    def status_for(self, proxy, source, host="127.0.0.1", listener="smtp"):
        self.sink.clear()
        s = smtplib.SMTP(host, proxy.port(listener), timeout=10, source_address=(source, 0))
        self.addCleanup(s.close)
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: geo %s\r\n\r\nx\r\n" % source.encode())
        s.quit()
        data = self.sink.wait_messages(1)[0]["data_crlf"]
        values = header_values(data, "X-TLS-Status")
        self.assertEqual(len(values), 1)
        return values[0]

    def test_geolite2_country_and_asn_go_into_status_header_and_log(self):
        country = self.db("country.mmdb", "GeoLite2-Country", GEOLITE_COUNTRY)
        asn = self.db("asn.mmdb", "GeoLite2-ASN", GEOLITE_ASN)
        p = self.start_proxy("\n[geoip]\ncountry_db = %s\nasn_db = %s\n" % (country, asn))
        status = self.status_for(p, "127.0.0.2")
        self.assertIn("scope=loopback", status)
        self.assertIn("country=DE", status)
        self.assertIn("asn=64500", status)
        p.wait_log('country=DE asn=64500 as_org="Example_Net,_Inc."')

    def test_ipv6_client_is_tagged_by_its_ipv6_network(self):
        country = self.db("country.mmdb", "GeoLite2-Country", GEOLITE_COUNTRY)
        p = self.start_proxy("\n[geoip]\ncountry_db = %s\n" % country)
        self.assertIn("country=FR", self.status_for(p, "::1", host="::1", listener="smtp6"))

    def test_registered_country_is_used_when_country_is_absent(self):
        country = self.db("country.mmdb", "GeoLite2-Country", GEOLITE_COUNTRY)
        p = self.start_proxy("\n[geoip]\ncountry_db = %s\n" % country)
        self.assertIn("country=SE", self.status_for(p, "127.0.0.4"))

    def test_flat_country_code_schema_of_ip_location_db_is_understood(self):
        country = self.db("flat.mmdb", "geo-whois-asn-country", FLAT_COUNTRY)
        p = self.start_proxy("\n[geoip]\ncountry_db = %s\n" % country)
        self.assertIn("country=NL", self.status_for(p, "127.0.0.2"))

    def test_lookup_miss_and_hostile_values_leave_the_field_out(self):
        country = self.db("country.mmdb", "GeoLite2-Country", GEOLITE_COUNTRY)
        p = self.start_proxy("\n[geoip]\ncountry_db = %s\n" % country)
        self.assertNotIn("country=", self.status_for(p, "127.0.0.3"))
        status = self.status_for(p, "127.0.0.5")
        self.assertNotIn("country=", status)
        self.assertNotIn("Evil", status)

    def test_missing_database_is_logged_and_mail_still_flows(self):
        missing = os.path.join(self.dir, "absent.mmdb")
        p = self.start_proxy("\n[geoip]\ncountry_db = %s\n" % missing)
        p.wait_log("event=geoip_missing")
        status = self.status_for(p, "127.0.0.2")
        self.assertNotIn("country=", status)
        self.assertIn("tls=none", status)

    def test_sighup_reloads_a_replaced_database(self):
        path = self.db("country.mmdb", "GeoLite2-Country", GEOLITE_COUNTRY)
        p = self.start_proxy("\n[geoip]\ncountry_db = %s\n" % path)
        self.assertIn("country=DE", self.status_for(p, "127.0.0.2"))
        # Replace the file the way updaters do: write aside, rename over.
        new = self.db("country.mmdb.new", "GeoLite2-Country",
                      [("127.0.0.2/32", {"country": {"iso_code": "AT"}})])
        os.rename(new, path)
        p.signal(signal.SIGHUP)
        p.wait_log("event=reload result=ok")
        self.assertIn("country=AT", self.status_for(p, "127.0.0.2"))

    def test_corrupt_database_is_a_config_error_with_file_and_line(self):
        bad = os.path.join(self.dir, "bad.mmdb")
        with open(bad, "wb") as f:
            f.write(os.urandom(4096))
        conf = os.path.join(self.dir, "bad.conf")
        with open(conf, "w") as f:
            f.write("[backend]\naddress = 127.0.0.1:2525\n[listener smtp]\n"
                    "address = 127.0.0.1:2526\nkind = smtp\n[geoip]\ncountry_db = %s\n" % bad)
        out = subprocess.run([PROXY_BIN, "-t", "-c", conf], capture_output=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(("%s:6: [geoip] country_db" % conf).encode(), out.stderr)


if __name__ == "__main__":
    unittest.main()

#!/bin/sh
# fetch-geoip-db.sh [DIR] - downloads a freely licensed country database,
# ip-location-db's geo-whois-asn-country (MaxMind DB format, IPv4 and
# IPv6; data CC BY 4.0 by the Number Resource Organization, nro.net), from
# the npm registry into DIR (default configs/geoip/), where
# configs/loopback.conf and the embedded default look for it.
set -eu
PACKAGE=@ip-location-db/geo-whois-asn-country-mmdb
DIR=${1:-$(dirname "$0")/geoip}
command -v npm >/dev/null 2>&1 || {
    echo "fetch-geoip-db: npm is needed (apt-get install npm)" >&2
    exit 1
}
mkdir -p "$DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
db="$tmp/package/geo-whois-asn-country.mmdb"
[ -s "$db" ] || { echo "fetch-geoip-db: $PACKAGE holds no geo-whois-asn-country.mmdb" >&2; exit 1; }
# Install atomically: a running proxy keeps its mapped copy until reload.
cp "$db" "$DIR/.geo-whois-asn-country.mmdb.new"
mv "$DIR/.geo-whois-asn-country.mmdb.new" "$DIR/geo-whois-asn-country.mmdb"
cp "$tmp/package/NRO_LICENSE" "$DIR/NRO_LICENSE"
version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$tmp/package/package.json")
echo "fetch-geoip-db: $DIR/geo-whois-asn-country.mmdb ($PACKAGE $version; data CC BY 4.0 by NRO, nro.net)"

#!/bin/sh
# Generate the smtp-tls-proxy test PKI (a throwaway CA and leaf certificates).
#
# usage: sh certs/make-test-pki.sh [--force] [DIR]
#
#   DIR      target directory (default: certs/test, i.e. test/ next to
#            this script)
#   --force  regenerate even if all files exist and are valid
#
# Idempotent: if every file exists and passes the checks below, nothing is
# written. Otherwise everything is regenerated in a temporary directory,
# verified, and then moved into DIR. Never prompts. Needs only `openssl`
# (tested with OpenSSL 3.0).
#
# Files (PEM):
#   ca.crt ca.key                  test CA "smtp-tls-proxy test CA", EC P-256, 10 years
#   mx-ecdsa.crt mx-ecdsa.key      mx.example.test, EC P-256
#   mx-rsa.crt mx-rsa.key          mx.example.test, RSA 2048
#   mx-ecdsa-chain.crt             mx-ecdsa.crt followed by ca.crt
#   other.crt other.key            mail.other.test, EC P-256
#   wild.crt wild.key              *.wild.test, RSA 2048
#   expired.crt expired.key        expired.example.test, EC P-256,
#                                  valid 2020-01-01 .. 2020-02-01 only

set -eu

force=0
dir=
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	-h|--help)
		sed -n '2,8s/^# \{0,1\}//p' "$0"
		exit 0 ;;
	-*) echo "make-test-pki: unknown option: $arg" >&2; exit 2 ;;
	*)
		if [ -n "$dir" ]; then
			echo "make-test-pki: more than one directory given" >&2
			exit 2
		fi
		dir=$arg ;;
	esac
done
# Default: test/ next to this script (certs/test in the source tree).
[ -n "$dir" ] || dir=$(dirname "$0")/test

command -v openssl >/dev/null 2>&1 || {
	echo "make-test-pki: openssl not found" >&2
	exit 1
}

# Leaves: "basename|CN/DNS name|key type". Order is the order of the summary.
LEAVES='mx-ecdsa|mx.example.test|ec
mx-rsa|mx.example.test|rsa
other|mail.other.test|ec
wild|*.wild.test|rsa'
EXPIRED_NAME=expired.example.test
EXPIRED_START=20200101000000Z
EXPIRED_END=20200201000000Z
CA_CN='smtp-tls-proxy test CA'
CA_DAYS=3650
LEAF_DAYS=730

FILES='ca.crt ca.key mx-ecdsa.crt mx-ecdsa.key mx-rsa.crt mx-rsa.key
mx-ecdsa-chain.crt other.crt other.key wild.crt wild.key
expired.crt expired.key'

# Keep the system openssl.cnf out of the way: every command that needs a
# config gets ours, everything else runs with an empty one.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make-test-pki.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
: >"$tmp/empty.cnf"
OPENSSL_CONF=$tmp/empty.cnf
export OPENSSL_CONF

die() {
	echo "make-test-pki: $*" >&2
	exit 1
}

# pubkey_of FILE: print the public key (PEM) of a certificate or private key.
pubkey_of() {
	case $1 in
	*.crt) openssl x509 -in "$1" -noout -pubkey ;;
	*) openssl pkey -in "$1" -pubout ;;
	esac
}

keys_match() {	# CERT KEY
	a=$(pubkey_of "$1" 2>/dev/null) || return 1
	b=$(pubkey_of "$2" 2>/dev/null) || return 1
	[ -n "$a" ] && [ "$a" = "$b" ]
}

# check D: validate an existing PKI in directory D. Returns 0 if it is
# complete and valid; otherwise prints the first problem to stderr.
check() {
	d=$1
	fail() { echo "make-test-pki: $d: $*" >&2; return 1; }
	for f in $FILES; do
		[ -s "$d/$f" ] || { fail "missing $f"; return 1; }
	done
	# CA: self-signed, valid now (and for at least another 30 days).
	openssl verify -x509_strict -CAfile "$d/ca.crt" "$d/ca.crt" >/dev/null 2>&1 ||
		{ fail "ca.crt does not verify"; return 1; }
	openssl x509 -in "$d/ca.crt" -noout -checkend 2592000 >/dev/null 2>&1 ||
		{ fail "ca.crt expires within 30 days"; return 1; }
	keys_match "$d/ca.crt" "$d/ca.key" || { fail "ca.key does not match ca.crt"; return 1; }
	echo "$LEAVES" | while IFS='|' read -r base name kt; do
		out=$(openssl verify -x509_strict -purpose sslserver -CAfile "$d/ca.crt" \
			-verify_hostname "$(echo "$name" | sed 's/^\*/x/')" \
			"$d/$base.crt" 2>&1) ||
			{ fail "$base.crt does not verify: $out"; exit 1; }
		openssl x509 -in "$d/$base.crt" -noout -checkend 2592000 >/dev/null 2>&1 ||
			{ fail "$base.crt expires within 30 days"; exit 1; }
		keys_match "$d/$base.crt" "$d/$base.key" ||
			{ fail "$base.key does not match $base.crt"; exit 1; }
		case $kt in
		ec) want='id-ecPublicKey' ;;
		rsa) want='rsaEncryption' ;;
		esac
		openssl x509 -in "$d/$base.crt" -noout -text 2>/dev/null |
			grep -q "Public Key Algorithm: $want" ||
			{ fail "$base.crt: wrong key type (want $kt)"; exit 1; }
	done || return 1
	# Chain file = leaf then CA, byte for byte.
	cat "$d/mx-ecdsa.crt" "$d/ca.crt" | cmp -s - "$d/mx-ecdsa-chain.crt" ||
		{ fail "mx-ecdsa-chain.crt is not mx-ecdsa.crt + ca.crt"; return 1; }
	# Expired: signed by the CA, but verification fails with "expired".
	out=$(openssl verify -CAfile "$d/ca.crt" "$d/expired.crt" 2>&1) &&
		{ fail "expired.crt verifies (it must not)"; return 1; }
	case $out in
	*"certificate has expired"*) ;;
	*) fail "expired.crt: unexpected verify result: $out"; return 1 ;;
	esac
	openssl verify -CAfile "$d/ca.crt" -no_check_time "$d/expired.crt" >/dev/null 2>&1 ||
		{ fail "expired.crt is not signed by ca.crt"; return 1; }
	keys_match "$d/expired.crt" "$d/expired.key" ||
		{ fail "expired.key does not match expired.crt"; return 1; }
	return 0
}

if [ "$force" = 1 ]; then
	echo "make-test-pki: $dir: --force: regenerating"
elif [ -d "$dir" ]; then
	if reason=$(check "$dir" 2>&1); then
		echo "make-test-pki: $dir: up to date (CA + 4 leaves + expired + chain; --force to regenerate)"
		exit 0
	fi
	echo "$reason" | sed -n '1s/^make-test-pki: \(.*\)/make-test-pki: \1; regenerating/p'
fi

old_umask=$(umask)
umask 077
w=$tmp/out
mkdir "$w"

# Config: extension sections for CA and leaves, plus a minimal `openssl ca`
# setup used only for the expired certificate (x509 -req in OpenSSL 3.0
# cannot set arbitrary notBefore/notAfter dates).
cat >"$tmp/pki.cnf" <<EOF
[ req ]
distinguished_name = req_dn
prompt = no
utf8 = yes
[ req_dn ]
CN = placeholder

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ leaf_ec ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:\${ENV::SAN}

[ leaf_rsa ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:\${ENV::SAN}

[ ca ]
default_ca = expired_ca
[ expired_ca ]
dir = $tmp/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir/new
certificate = $w/ca.crt
private_key = $w/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ policy_any ]
commonName = supplied
EOF
SAN=unused
export SAN

genkey() {	# TYPE OUT
	case $1 in
	ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2" ;;
	rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" ;;
	esac 2>"$tmp/err" || { cat "$tmp/err" >&2; die "key generation failed: $2"; }
	chmod 600 "$2"
}

serial() {	# random positive 128-bit serial, top bit clear
	printf '0x%s' "$(openssl rand -hex 16 | sed 's/^./0/')"
}

run() {	# run an openssl command quietly, showing its output only on failure
	"$@" >"$tmp/err" 2>&1 || { cat "$tmp/err" >&2; die "failed: $*"; }
}

# --- CA ---
genkey ec "$w/ca.key"
run openssl req -config "$tmp/pki.cnf" -new -x509 -key "$w/ca.key" -sha256 \
	-subj "/CN=$CA_CN" -days "$CA_DAYS" -set_serial "$(serial)" \
	-extensions v3_ca -out "$w/ca.crt"

# --- leaves (valid now) ---
echo "$LEAVES" | while IFS='|' read -r base name kt; do
	genkey "$kt" "$w/$base.key"
	run openssl req -config "$tmp/pki.cnf" -new -key "$w/$base.key" \
		-subj "/CN=$name" -out "$tmp/$base.csr"
	SAN=$name
	run openssl x509 -req -in "$tmp/$base.csr" -sha256 \
		-CA "$w/ca.crt" -CAkey "$w/ca.key" -set_serial "$(serial)" \
		-days "$LEAF_DAYS" -extfile "$tmp/pki.cnf" -extensions "leaf_$kt" \
		-out "$w/$base.crt"
done

cat "$w/mx-ecdsa.crt" "$w/ca.crt" >"$w/mx-ecdsa-chain.crt"

# --- expired leaf: `openssl ca` with explicit start and end dates ---
mkdir "$tmp/ca-db" "$tmp/ca-db/new"
: >"$tmp/ca-db/index.txt"
serial | sed 's/^0x//' >"$tmp/ca-db/serial"	# random serial for `openssl ca`
echo >>"$tmp/ca-db/serial"
genkey ec "$w/expired.key"
run openssl req -config "$tmp/pki.cnf" -new -key "$w/expired.key" \
	-subj "/CN=$EXPIRED_NAME" -out "$tmp/expired.csr"
SAN=$EXPIRED_NAME
run openssl ca -config "$tmp/pki.cnf" -batch -notext \
	-in "$tmp/expired.csr" -extensions leaf_ec \
	-startdate "$EXPIRED_START" -enddate "$EXPIRED_END" -out "$w/expired.crt"

for f in $FILES; do
	case $f in
	*.key) chmod 600 "$w/$f" ;;
	*) chmod 644 "$w/$f" ;;
	esac
done

check "$w" || die "generated PKI failed verification (nothing installed)"

# Install: create the directory (with the caller's umask) if needed, then
# move the files in. Keys stay 0600, certificates 0644.
(umask "$old_umask" && mkdir -p "$dir")
for f in $FILES; do
	mv -f "$w/$f" "$dir/$f"
done

check "$dir" || die "$dir: verification failed after install"

ca_serial=$(openssl x509 -in "$dir/ca.crt" -noout -serial | cut -d= -f2)
exp_dates=$(openssl x509 -in "$dir/expired.crt" -noout -dateopt iso_8601 \
	-startdate -enddate | cut -d= -f2 | cut -c1-10 | tr '\n' ' ' |
	sed 's/ $//; s/ /../')
echo "make-test-pki: $dir: generated CA (serial $ca_serial) + mx-ecdsa mx-rsa other wild + expired ($exp_dates) + mx-ecdsa-chain; all verified"

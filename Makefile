# smtp-tls-proxy - build, test and demo.
#
#   make            build proxy/smtp-tls-proxy
#   make deps       install the Debian packages building and testing need
#   make test       unit tests, sanitizer build, integration tests
#   make fresh-check   make test in a fresh Debian 12 root (root, minutes)
#   make container-check   build the images, mail through them (root, minutes)
#   make demo       run the proxy on loopback with a demo backend
#   make certs      the test PKI in certs/test/
#   make geoip-db   a free country database for the demo
#   make bazel      the same binary, built by Bazel
#   make fuzz       libFuzzer on the pure modules (FUZZ_SECONDS each)
#   make man        man/smtp-tls-proxy.conf.5, generated from the key table
#   make bench      benchmark against direct, nginx mail and hitch (BENCH_ARGS=)
#   make install    binary, man pages, systemd unit, example configuration
#                   (PREFIX=/usr/local, DESTDIR=; see README "Installing")
#   make uninstall  removes them (never /etc/smtp-tls-proxy/smtp-tls-proxy.conf)

SHELL := /bin/bash

BORINGSSL_DIR ?=
ifeq ($(BORINGSSL_DIR),)
  SSL_INC := /usr/include/android
  SSL_LIB := /usr/lib/x86_64-linux-gnu/android
else
  SSL_INC := $(BORINGSSL_DIR)/include
  SSL_LIB := $(firstword $(wildcard $(BORINGSSL_DIR)/build/ssl $(BORINGSSL_DIR)/build) $(BORINGSSL_DIR)/lib)
endif

CC      ?= cc
PYTHON  ?= /usr/bin/python3
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla
CPPFLAGS_ALL := -D_GNU_SOURCE -isystem $(SSL_INC) $(CPPFLAGS)
LDLIBS_ALL := -L$(SSL_LIB) -Wl,-rpath,$(SSL_LIB) -lssl -lcrypto -lev -lmaxminddb -lcares -lmicrohttpd -lhiredis -lsystemd -lz -lpthread

# The layers (ARCHITECTURE.md): core <- protocol <- config <- tls <- daemon.
# report (core, protocol) is the report subcommand, linked into the daemon.
# Sources include headers by layer ("core/buffer.h") from proxy/; Bazel
# enforces the layering, make just builds it.
LAYERS   := core protocol config tls obs report daemon
GEN      := proxy/config/default_config.c
SRC      := $(filter-out $(GEN),$(foreach l,$(LAYERS),$(wildcard proxy/$(l)/*.c))) $(GEN)
BIN      := proxy/smtp-tls-proxy
# Everything but the daemon is pure and unit-tested without sockets (tls.c
# needs certificates and a handshake: the integration tests cover it; the
# ticket key ring, tls/tickets.c, takes the time passed in).
PURE     := $(filter proxy/core/% proxy/protocol/% proxy/config/% proxy/obs/metrics.c proxy/report/% proxy/tls/tickets.c,$(SRC))
UNIT_SRC := $(wildcard proxy/tests/test_*.c) proxy/tests/unit.c

# make tools: build/tools/smtp-load, the load generator and sink make bench
# drives (tools/smtp-load/README.md). It links the proxy's pure objects it
# reuses; its own pure modules are unit-tested with the proxy's
# (proxy/tests/test_load_*.c include them as "smtp-load/...").
LOAD_DIR   := tools/smtp-load
LOAD_BIN   := build/tools/smtp-load
LOAD_SRC   := $(wildcard $(LOAD_DIR)/*.c)
LOAD_PURE  := $(addprefix $(LOAD_DIR)/,hist.c message.c eod.c sink_proto.c options.c report.c)
LOAD_REUSE := proxy/core/buffer.c proxy/core/decimal.c proxy/protocol/smtp_reply.c \
              proxy/protocol/ehlo.c proxy/protocol/smtp_cmd.c proxy/protocol/proxy_header.c
LOAD_TESTS := $(wildcard proxy/tests/test_load_*.c)

SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# One object per source and variant, with dependency files (-MMD), so a
# change rebuilds what it touches. build/ is the only output directory.
obj = $(patsubst %.c,build/$(1)/%.o,$(2))
PLAIN_OBJ := $(call obj,plain,$(SRC))
ASAN_OBJ  := $(call obj,asan,$(SRC))
UNIT_OBJ  := $(call obj,plain,$(UNIT_SRC) $(PURE) $(LOAD_PURE))
UNIT_ASAN_OBJ := $(call obj,asan,$(UNIT_SRC) $(PURE) $(LOAD_PURE))

.PHONY: all deps test unit unit-asan integration demo bazel clean check-config certs geoip-db fuzz \
        man install uninstall clean-man tools

all: $(BIN)

build/plain/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS_ALL) -Iproxy -MMD -MP -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(SAN_FLAGS) $(CPPFLAGS_ALL) -Iproxy -MMD -MP -c -o $@ $<

# The generated source exists before anything that lists it compiles.
$(call obj,plain,$(GEN)) $(call obj,asan,$(GEN)): $(GEN)

$(BIN): $(PLAIN_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS_ALL)

proxy/smtp-tls-proxy-asan: $(ASAN_OBJ)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS_ALL)

$(GEN): configs/loopback.conf proxy/config/gen-default-config.sh
	sh proxy/config/gen-default-config.sh configs/loopback.conf > $@.tmp && mv $@.tmp $@

proxy/tests/unit-tests: $(UNIT_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS_ALL)

proxy/tests/unit-tests-asan: $(UNIT_ASAN_OBJ)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS_ALL)

$(call obj,plain,$(LOAD_TESTS)) $(call obj,asan,$(LOAD_TESTS)): CPPFLAGS_ALL += -Itools

tools: $(LOAD_BIN)

$(LOAD_BIN): $(call obj,plain,$(LOAD_SRC) $(LOAD_REUSE))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -L$(SSL_LIB) -Wl,-rpath,$(SSL_LIB) -lssl -lcrypto -lev -lpthread

unit: proxy/tests/unit-tests proxy/tests/unit-tests-asan
	proxy/tests/unit-tests
	proxy/tests/unit-tests-asan

# Integration tests run against the sanitizer build: a memory error in
# any session fails the run.
integration: $(BIN) proxy/smtp-tls-proxy-asan certs
	cd integration-tests && PROXY_BIN=$(CURDIR)/proxy/smtp-tls-proxy-asan $(PYTHON) run.py

# install-deps ends with .ci/check-peers, so a peer that lacks a capability
# stops the run in seconds, before anything is built.
test:
	sh .ci/install-deps
	$(MAKE) check-config unit integration

check-config: $(BIN) certs
	$(BIN) -t -c configs/loopback.conf
	$(BIN) -t
	@# example.conf names Let's Encrypt paths: check it with the test PKI.
	sed -e 's#/etc/letsencrypt/live/mx.example.net-rsa/fullchain.pem#certs/test/mx-rsa.crt#' \
	    -e 's#/etc/letsencrypt/live/mx.example.net-rsa/privkey.pem#certs/test/mx-rsa.key#' \
	    -e 's#/etc/letsencrypt/live/mx.example.net/fullchain.pem#certs/test/mx-ecdsa-chain.crt#' \
	    -e 's#/etc/letsencrypt/live/mx.example.net/privkey.pem#certs/test/mx-ecdsa.key#' \
	    -e 's#/var/lib/GeoIP/#proxy/tests/no-such-geoip/#' \
	    configs/example.conf > proxy/tests/example-check.conf
	$(BIN) -t -c proxy/tests/example-check.conf

deps:
	sh .ci/install-deps

# The interoperability matrix alone, in its long form: every client
# against every backend (smtp-sink, Postfix, OpenSMTPD, Exim) on every
# listener kind, plus a 1 MiB message and TLS 1.2 variants per cell
# (make test runs the short form with the other integration tests).
.PHONY: matrix
matrix: proxy/smtp-tls-proxy-asan certs
	sh .ci/fetch-mta-debs
	cd integration-tests && MATRIX=full PROXY_BIN=$(CURDIR)/proxy/smtp-tls-proxy-asan \
	    $(PYTHON) run.py -k test_matrix

# git clone + make test in a debootstrapped Debian 12 root: proves that
# make deps installs everything (needs root; not part of make test).
.PHONY: fresh-check
fresh-check:
	sh .ci/fresh-check

# The container images (Dockerfile, configs/compose/) built with buildah
# and run with podman, mail sent through the proxy's to Postfix's (needs
# root; not part of make test: test_deployment.py checks the files).
.PHONY: container-check
container-check: certs
	sh .ci/container-check

# The benchmark (not part of make test: it prints figures and asserts
# nothing): smtp-tls-proxy against a direct connection to the sink, nginx's
# mail proxy and hitch, interleaved in one run (tools/bench/README.md).
# BENCH_ARGS passes options through, e.g. BENCH_ARGS=--quick.
.PHONY: bench
bench: $(BIN) certs tools
	$(PYTHON) tools/bench/bench.py $(BENCH_ARGS)

# libFuzzer targets for the pure modules; each runs FUZZ_SECONDS from the
# committed seeds (new inputs go to a scratch directory).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := data_scan smtp_reply config smtp_cmd tls_hello report failmem proxy_header der
FUZZ_CFLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -isystem $(SSL_INC) -Iproxy \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
proxy/fuzz/fuzz_data_scan: proxy/fuzz/fuzz_data_scan.c proxy/protocol/data_scan.c proxy/core/buffer.c
	clang $(FUZZ_CFLAGS) -o $@ $^
proxy/fuzz/fuzz_smtp_reply: proxy/fuzz/fuzz_smtp_reply.c proxy/protocol/smtp_reply.c proxy/protocol/ehlo.c \
                            proxy/core/buffer.c proxy/core/decimal.c
	clang $(FUZZ_CFLAGS) -o $@ $^
proxy/fuzz/fuzz_smtp_cmd: proxy/fuzz/fuzz_smtp_cmd.c proxy/protocol/smtp_cmd.c proxy/core/buffer.c \
                          proxy/core/decimal.c
	clang $(FUZZ_CFLAGS) -o $@ $^
proxy/fuzz/fuzz_tls_hello: proxy/fuzz/fuzz_tls_hello.c proxy/protocol/tls_hello.c
	clang $(FUZZ_CFLAGS) -o $@ $^
proxy/fuzz/fuzz_report: proxy/fuzz/fuzz_report.c proxy/report/received.c proxy/report/logline.c \
                        proxy/report/mailbox.c proxy/report/when.c proxy/core/log.c
	clang $(FUZZ_CFLAGS) -o $@ $^
proxy/fuzz/fuzz_config: proxy/fuzz/fuzz_config.c proxy/config/config.c proxy/config/config_keys.c \
                        proxy/core/addr.c proxy/core/cidr.c proxy/core/log.c $(GEN)
	clang $(FUZZ_CFLAGS) -o $@ $^
proxy/fuzz/fuzz_failmem: proxy/fuzz/fuzz_failmem.c proxy/core/failmem.c proxy/core/cidr.c \
                         proxy/core/addr.c
	clang $(FUZZ_CFLAGS) -o $@ $^
proxy/fuzz/fuzz_proxy_header: proxy/fuzz/fuzz_proxy_header.c proxy/protocol/proxy_header.c \
                              proxy/protocol/identity.c proxy/core/buffer.c proxy/core/addr.c
	clang $(FUZZ_CFLAGS) -o $@ $^

proxy/fuzz/fuzz_der: proxy/fuzz/fuzz_der.c proxy/protocol/der.c proxy/protocol/ocsp.c
	clang $(FUZZ_CFLAGS) -o $@ $^

fuzz: $(FUZZ_TARGETS:%=proxy/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	    scratch=$$(mktemp -d); \
	    echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	    proxy/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -seed=1 \
	        -print_final_stats=1 $$scratch proxy/fuzz/corpus/$$t 2>&1 | \
	        grep -E "^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|.*ERROR)" ; \
	    rc=$${PIPESTATUS[0]}; rm -rf $$scratch; [ "$$rc" = 0 ] || exit 1; \
	done

# A free country database (ip-location-db, data CC BY 4.0 by NRO) into
# configs/geoip/, where the demo configuration uses it when present.
geoip-db:
	sh configs/fetch-geoip-db.sh configs/geoip

# The test PKI in certs/test/ (generated, not committed; idempotent).
certs:
	sh certs/make-test-pki.sh certs/test

demo:
	sh .ci/install-deps
	$(MAKE) $(BIN) certs
	sh integration-tests/demo.sh

bazel:
	bazel build //:smtp-tls-proxy

clean:
	rm -rf build $(BIN) proxy/smtp-tls-proxy-asan $(GEN) proxy/tests/unit-tests \
	       proxy/tests/unit-tests-asan $(FUZZ_TARGETS:%=proxy/fuzz/fuzz_%)

# The man pages (man/). smtp-tls-proxy.8 is written by hand;
# smtp-tls-proxy.conf.5 is generated, never committed: the key table
# (smtp-tls-proxy --keys) fills in the template's @KEYS section@ lines, so
# every key is documented with its default (integration-tests/test_docs.py).
MAN_CONF := man/smtp-tls-proxy.conf.5
$(MAN_CONF): $(BIN) man/gen-conf-man.py man/smtp-tls-proxy.conf.5.in
	$(BIN) --keys > $@.keys && \
	    $(PYTHON) man/gen-conf-man.py man/smtp-tls-proxy.conf.5.in $@.keys > $@.tmp && \
	    mv $@.tmp $@; rc=$$?; rm -f $@.keys $@.tmp; exit $$rc

man: $(MAN_CONF)

clean: clean-man
clean-man:
	rm -f $(MAN_CONF) $(MAN_CONF).keys $(MAN_CONF).tmp

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary in $(PREFIX)/sbin,
# the man pages in $(PREFIX)/share/man, configs/example.conf as
# /etc/smtp-tls-proxy/smtp-tls-proxy.conf.example (the configuration
# directory is /etc whatever PREFIX is, SYSCONFDIR to change it; an
# existing smtp-tls-proxy.conf is never touched), and the systemd unit
# configs/systemd/smtp-tls-proxy.service, its ExecStart= naming the
# installed binary, in $(PREFIX)/lib/systemd/system, or /lib/systemd/system
# when PREFIX is /usr (Debian's systemd unit directory; SYSTEMD_UNIT_DIR
# to change it). DESTDIR is a staging root (packages, tests): nothing
# outside it is written.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMD_UNIT_DIR ?= $(if $(filter /usr /usr/,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
UNIT := configs/systemd/smtp-tls-proxy.service
CONF_DIR = $(DESTDIR)$(SYSCONFDIR)/smtp-tls-proxy

install: $(BIN) $(MAN_CONF)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(CONF_DIR)
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/smtp-tls-proxy
	install -m 0644 man/smtp-tls-proxy.8 $(DESTDIR)$(MANDIR)/man8/smtp-tls-proxy.8
	install -m 0644 $(MAN_CONF) $(DESTDIR)$(MANDIR)/man5/smtp-tls-proxy.conf.5
	install -m 0644 configs/example.conf $(CONF_DIR)/smtp-tls-proxy.conf.example
	@if [ -f $(UNIT) ]; then \
	    echo "install $(UNIT) -> $(DESTDIR)$(SYSTEMD_UNIT_DIR)/smtp-tls-proxy.service"; \
	    install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR) && \
	    sed -e 's#^\(ExecStart=[-@:+!]*\)[^ ]*/smtp-tls-proxy\( \|$$\)#\1$(SBINDIR)/smtp-tls-proxy\2#' \
	        -e 's# /etc/smtp-tls-proxy/# $(SYSCONFDIR)/smtp-tls-proxy/#g' \
	        $(UNIT) > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/smtp-tls-proxy.service && \
	    chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/smtp-tls-proxy.service; \
	fi
	@[ -e $(CONF_DIR)/smtp-tls-proxy.conf ] || \
	    echo "make install: no $(CONF_DIR)/smtp-tls-proxy.conf yet: start from smtp-tls-proxy.conf.example"

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/smtp-tls-proxy $(DESTDIR)$(MANDIR)/man8/smtp-tls-proxy.8 \
	      $(DESTDIR)$(MANDIR)/man5/smtp-tls-proxy.conf.5 $(CONF_DIR)/smtp-tls-proxy.conf.example \
	      $(DESTDIR)$(SYSTEMD_UNIT_DIR)/smtp-tls-proxy.service
	@rmdir $(CONF_DIR) 2>/dev/null || true

# Last, so that no dependency file's target becomes the default goal.
-include $(wildcard build/*/proxy/*/*.d build/*/tools/*/*.d)

# Dockerfile - smtp-tls-proxy as a container (README: "Running as a
# container sidecar"). Two stages on Debian 12: the first builds the
# binary with Debian's -dev packages, the second has only the runtime
# libraries, the binary and configs/sidecar.conf as its default
# configuration.
#
#   docker build -t smtp-tls-proxy .        (or: podman build, buildah bud)
#   docker compose up                       (compose.yaml: the proxy and a Postfix)

FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make binutils android-libboringssl-dev libev-dev libmaxminddb-dev \
        libmicrohttpd-dev libc-ares-dev libhiredis-dev libsystemd-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What `make` reads: the sources and the demo configuration that is
# compiled in as the embedded default.
COPY Makefile ./
COPY proxy/ proxy/
COPY configs/loopback.conf configs/
RUN make -j"$(nproc)" proxy/smtp-tls-proxy \
 && strip proxy/smtp-tls-proxy \
 && proxy/smtp-tls-proxy --version

FROM debian:12-slim
# The shared libraries the binary is linked with (ldd), nothing else:
# Debian's BoringSSL, libev, libmaxminddb, c-ares, libmicrohttpd,
# hiredis, libsystemd and zlib (integration-tests/test_deployment.py
# checks this list against the binary).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        android-libboringssl libev4 libmaxminddb0 libc-ares2 libmicrohttpd12 \
        libhiredis0.14 libsystemd0 zlib1g \
 && rm -rf /var/lib/apt/lists/*
# A system user with a fixed uid and gid, so that mounted certificates
# and keys can be made readable to it from the host (chown 2525 or
# chgrp 2525 with mode 0640).
ARG PROXY_UID=2525
RUN groupadd --system --gid "$PROXY_UID" smtp-tls-proxy \
 && useradd --uid "$PROXY_UID" --gid smtp-tls-proxy --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin smtp-tls-proxy \
 && install -d -o smtp-tls-proxy -g smtp-tls-proxy -m 0750 \
        /var/lib/smtp-tls-proxy /run/smtp-tls-proxy \
 && install -d -m 0755 /etc/smtp-tls-proxy /etc/smtp-tls-proxy/certs
COPY --from=build /src/proxy/smtp-tls-proxy /usr/sbin/smtp-tls-proxy
COPY configs/sidecar.conf /etc/smtp-tls-proxy/smtp-tls-proxy.conf
# Mount points: the certificates (read-only; fullchain.pem and
# privkey.pem, see configs/sidecar.conf) and the state that outlives a
# container (the STARTTLS failure memory). The configuration is not a
# volume: the image's file works as it is with environment overrides
# (SMTP_TLS_PROXY__SECTION__KEY), and a file of your own is mounted over
# /etc/smtp-tls-proxy/smtp-tls-proxy.conf.
VOLUME ["/etc/smtp-tls-proxy/certs", "/var/lib/smtp-tls-proxy"]
# Non-root: high ports, which need no capability (map 25, 587 and 465 to
# them); 9925 is /metrics and /healthz.
USER smtp-tls-proxy
EXPOSE 2525 5870 4650 9925
# The slim image has no HTTP client: the proxy asks its own /healthz
# (exit 0 on 200; 503 while draining after SIGTERM). It reads the same
# configuration and environment as the proxy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/sbin/smtp-tls-proxy", "healthcheck", "-c", "/etc/smtp-tls-proxy/smtp-tls-proxy.conf"]
# SIGTERM stops accepting and lets transactions finish ([proxy]
# shutdown_grace, 30s): give `docker stop` more than that (-t 45,
# stop_grace_period in compose.yaml).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/smtp-tls-proxy"]
CMD ["-c", "/etc/smtp-tls-proxy/smtp-tls-proxy.conf"]

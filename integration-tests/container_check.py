#!/usr/bin/env python3
"""The container images, built and run: `make container-check` (through
.ci/container-check, which provides podman, buildah and the debian:12-slim
base). Not a test_*.py: it takes minutes and root, so make test does not
run it; test_deployment.py checks the same files statically.

It builds the Dockerfile at the top and configs/compose/ with buildah,
runs both images in a network namespace of its own (loopback only, as a
pod whose containers share one network, the MTA at 127.0.0.1:25 as in
configs/sidecar.conf, reached by the name "mta" as in compose.yaml), and
sends mail with swaks STARTTLS from another loopback address: the
message must reach Postfix's Maildir with the proxy's Received header,
and Postfix must name the client the PROXY header told it. Closes with
"container-check: N passed, N failed".
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CERTS = os.path.join(ROOT, "certs", "test")
TAG = "localhost/smtp-tls-proxy:check"
MTA_TAG = "localhost/smtp-tls-proxy-demo-mta:check"
SUFFIX = str(os.getpid())
NETNS = "stp-cc-" + SUFFIX
PROXY = "stp-cc-proxy-" + SUFFIX
MTA = "stp-cc-mta-" + SUFFIX
CLIENT = "127.0.0.2"  # not the proxy's address: the PROXY header carries it


def limits():
    """Resource limits for the containers no higher than this process's
    hard ones: podman asks for 1048576 descriptors and processes, which
    a root without CAP_SYS_RESOURCE (a sandbox) cannot grant."""
    import resource
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
    return ["--ulimit", "nofile=%d:%d" % (nofile, nofile), "--ulimit", "nproc=4096:4096"]


def sh(argv, timeout=600, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(argv), p.returncode,
                                                    p.stdout[-4000:], p.stderr[-4000:]))
    return p


def build(context, tag):
    sh(["buildah", "bud", "--format", "docker", "--isolation", "chroot", "--pull=false",
        "--network", "host"] + limits() + ["-t", tag, context], timeout=1200)


class ContainerCheck(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        build(ROOT, TAG)
        build(os.path.join(ROOT, "configs", "compose"), MTA_TAG)
        cls.certs = tempfile.mkdtemp(prefix="stp-cc-certs-")
        os.chmod(cls.certs, 0o755)
        shutil.copy(os.path.join(CERTS, "mx-ecdsa-chain.crt"),
                    os.path.join(cls.certs, "fullchain.pem"))
        key = os.path.join(cls.certs, "privkey.pem")
        shutil.copy(os.path.join(CERTS, "mx-ecdsa.key"), key)
        os.chown(key, 2525, 2525)  # the image's user
        os.chmod(key, 0o600)
        os.chmod(os.path.join(cls.certs, "fullchain.pem"), 0o644)
        sh(["ip", "netns", "add", NETNS])
        sh(["ip", "-n", NETNS, "link", "set", "lo", "up"])
        net = ["--network", "ns:/run/netns/" + NETNS, "--runtime", "runc"] + limits()
        sh(["podman", "run", "-d", "--name", MTA] + net + [MTA_TAG])
        sh(["podman", "run", "-d", "--name", PROXY] + net + [
            "--add-host", "mta:127.0.0.1",
            "-e", "SMTP_TLS_PROXY__BACKEND__ADDRESS=mta:25",
            "-e", "SMTP_TLS_PROXY__PROXY__HOSTNAME=mx.example.test",
            "-v", cls.certs + ":/etc/smtp-tls-proxy/certs:ro", TAG])
        for _ in range(300):
            if sh(["podman", "healthcheck", "run", PROXY], check=False).returncode == 0:
                break
            time.sleep(0.1)

    @classmethod
    def tearDownClass(cls):
        for c in (PROXY, MTA):
            sh(["podman", "rm", "-f", "-t", "5", c], check=False)
        sh(["ip", "netns", "delete", NETNS], check=False)
        shutil.rmtree(cls.certs, True)

    def logs(self, name):
        p = sh(["podman", "logs", name], check=False)
        return p.stdout + p.stderr

    def test_1_image_runs_as_its_user_with_the_healthcheck(self):
        fmt = "{{.Config.User}} {{json .Config.Healthcheck.Test}} {{json .Config.ExposedPorts}}"
        out = sh(["podman", "image", "inspect", TAG, "--format", fmt]).stdout
        self.assertIn("smtp-tls-proxy [\"CMD\",\"/usr/sbin/smtp-tls-proxy\",\"healthcheck\"", out)
        for port in ("2525/tcp", "5870/tcp", "4650/tcp", "9925/tcp"):
            self.assertIn(port, out)
        uid = sh(["podman", "exec", PROXY, "id", "-u"]).stdout.strip()
        self.assertEqual(uid, "2525")

    def test_2_healthy(self):
        p = sh(["podman", "healthcheck", "run", PROXY], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.logs(PROXY))
        out = sh(["podman", "exec", PROXY, "smtp-tls-proxy", "-t", "-c",
                  "/etc/smtp-tls-proxy/smtp-tls-proxy.conf"]).stdout
        self.assertIn("[backend] address = mta:25 (from the environment", out)

    def test_3_mail_through_the_sidecar_reaches_postfix(self):
        p = sh(["ip", "netns", "exec", NETNS, "swaks", "--server", "127.0.0.1:2525", "--tls",
                "--local-interface", CLIENT, "--ehlo", "client.example.org",
                "--from", "alice@example.org", "--to", "bob@example.test",
                "--header", "Subject: container-check " + SUFFIX], timeout=60)
        self.assertIn("TLS started", p.stdout)
        self.assertIn("250 2.0.0 Ok: queued as", p.stdout)
        box = ""
        for _ in range(100):
            box = sh(["podman", "exec", MTA, "sh", "-c",
                      "cat /var/mail/example.test/inbox/new/* 2>/dev/null"], check=False).stdout
            if "container-check " + SUFFIX in box:
                break
            time.sleep(0.1)
        print("\n--- the message in Postfix's Maildir ---\n" + box, file=sys.stderr)
        self.assertIn("by mx.example.test (smtp-tls-proxy) with ESMTPS", box)
        self.assertIn("tls TLS_AES_256_GCM_SHA384 (TLSv1.3", box)
        self.assertIn("X-TLS-Status: tls=TLSv1.3;", box)
        # Postfix's own Received: the client from the PROXY v2 header.
        self.assertIn("[%s])\n\tby mta.example.test (Postfix)" % CLIENT, box)
        log = self.logs(MTA)
        print("--- Postfix's log ---\n" + "\n".join(
            l for l in log.splitlines() if "postfix/" in l)[-1500:], file=sys.stderr)
        self.assertIn("[%s]" % CLIENT, log)
        self.assertIn("status=sent (delivered to maildir)", log)

    def test_4_stop_is_clean(self):
        sh(["podman", "stop", "-t", "45", PROXY], timeout=90)
        code = sh(["podman", "inspect", PROXY, "--format", "{{.State.ExitCode}}"]).stdout.strip()
        self.assertEqual(code, "0", self.logs(PROXY))
        self.assertIn("event=stopped", self.logs(PROXY))


def main():
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(ContainerCheck)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print("container-check: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

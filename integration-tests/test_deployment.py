"""The deployment files: the systemd unit (configs/systemd/), the container
image (Dockerfile, .dockerignore), the sidecar configuration and the
compose project (configs/sidecar.conf, compose.yaml, configs/compose/).

- systemd-analyze verify accepts the unit (and its non-root drop-in) and
  its offline security review rates it "OK" (exposure below 5.0);
- the proxy run as the unit runs it - as root with [proxy] user, within
  the unit's capability bounding set and no-new-privileges, in a state
  and runtime directory made as StateDirectory=/RuntimeDirectory= with
  Group= make them - reloads on a SIGHUP to the main process, stops on
  SIGTERM, and makes no system call the unit's SystemCallFilter denies;
- the image's runtime stage installs the package of every library the
  binary is linked with, runs as a non-root user and has a HEALTHCHECK;
- configs/sidecar.conf passes -t with compose.yaml's environment.

Building and running the image itself is `make container-check`
(integration-tests/container_check.py): minutes, and podman.
"""
import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

import yaml

from peers import SmtpSink, free_port, wait_port
from proxyproc import PLAIN_PROXY_BIN, ROOT

UNIT = os.path.join(ROOT, "configs", "systemd", "smtp-tls-proxy.service")
DROPIN = os.path.join(ROOT, "configs", "systemd", "non-root.conf")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
SIDECAR = os.path.join(ROOT, "configs", "sidecar.conf")
COMPOSE = os.path.join(ROOT, "compose.yaml")
MTA_DIR = os.path.join(ROOT, "configs", "compose")
INSTALL_DEPS = os.path.join(ROOT, ".ci", "install-deps")
CERTS = os.path.join(ROOT, "certs", "test")
# What `systemd-analyze security` calls good: "OK" is below 5.0.
EXPOSURE_MAX = 5.0


def run(argv, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout)


def service_settings(path):
    """[Service] of a unit file as (key, value) in order, comments out."""
    out, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                k, _, v = line.partition("=")
                out.append((k.strip(), v.strip()))
    return out


def unit_for_this_machine(directory):
    """The unit with ExecStart naming the built binary."""
    with open(UNIT) as f:
        text = f.read()
    assert "ExecStart=/usr/sbin/smtp-tls-proxy " in text
    text = text.replace("ExecStart=/usr/sbin/smtp-tls-proxy ",
                        "ExecStart=%s " % PLAIN_PROXY_BIN)
    path = os.path.join(directory, "smtp-tls-proxy.service")
    with open(path, "w") as f:
        f.write(text)
    return path


def exposure(output):
    m = re.search(r"Overall exposure level for smtp-tls-proxy\.service: (\d+\.\d+) (\w+)",
                  output)
    assert m, output
    return float(m.group(1)), m.group(2)


class SystemdUnitTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-unit-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.unit = unit_for_this_machine(self.dir)

    def test_verify_accepts_the_unit(self):
        r = run(["systemd-analyze", "verify", "--man=no", self.unit])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # verify warns on stderr (unknown keys, bad values) and still exits 0.
        self.assertNotIn("smtp-tls-proxy.service:", r.stdout + r.stderr)

    def test_security_review_is_ok(self):
        r = run(["systemd-analyze", "security", "--offline=true", self.unit])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        level, word = exposure(r.stdout + r.stderr)
        self.assertLess(level, EXPOSURE_MAX, r.stdout)
        self.assertEqual(word, "OK", r.stdout)

    def test_non_root_drop_in(self):
        # Before the drop-in exists: the unit's directory is searched too.
        root, _ = exposure(run(["systemd-analyze", "security", "--offline=true",
                                self.unit]).stdout)
        dropins = os.path.join(self.dir, "smtp-tls-proxy.service.d")
        os.makedirs(dropins)
        shutil.copy(DROPIN, dropins)
        env = {"SYSTEMD_UNIT_PATH": self.dir + ":"}
        r = run(["systemd-analyze", "verify", "--man=no", self.unit], env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("smtp-tls-proxy.service", r.stdout + r.stderr)
        r = run(["systemd-analyze", "security", "--offline=true", self.unit], env=env)
        text = r.stdout + r.stderr
        self.assertIn("Service runs under a static non-root user identity", text)
        self.assertIn("Service process receives ambient capabilities", text)
        self.assertIn("Service cannot change UID/GID identities/capabilities", text)
        with_dropin, _ = exposure(text)
        self.assertLess(with_dropin, root)

    def test_the_settings_the_proxy_relies_on(self):
        s = service_settings(UNIT)
        d = dict(s)
        self.assertEqual(d["Type"], "notify")
        # READY=1 comes from the privilege-separated child, not MAINPID.
        self.assertEqual(d["NotifyAccess"], "all")
        self.assertEqual(d["ExecStart"], "/usr/sbin/smtp-tls-proxy -c "
                         "/etc/smtp-tls-proxy/smtp-tls-proxy.conf")
        self.assertEqual(d["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertEqual(d["Restart"], "on-failure")
        self.assertEqual(d["LimitNOFILE"], "65536")
        self.assertEqual(d["StateDirectory"], "smtp-tls-proxy")
        self.assertEqual(d["RuntimeDirectory"], "smtp-tls-proxy")
        self.assertNotIn("User", d)  # root starts it; [proxy] user drops
        self.assertEqual(set(d["CapabilityBoundingSet"].split()),
                         {"CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"})
        self.assertEqual(d["RestrictAddressFamilies"].split(), ["AF_INET", "AF_INET6", "AF_UNIX"])
        for k in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                  "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                  "ProtectControlGroups", "ProtectClock", "ProtectHostname",
                  "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute",
                  "RestrictRealtime", "RestrictSUIDSGID", "RemoveIPC"):
            self.assertEqual(d.get(k), "yes", k)
        self.assertEqual(d["ProtectSystem"], "strict")
        self.assertEqual(d["SystemCallArchitectures"], "native")


def expand_syscall_group(name, cache={}):
    """The system calls of a systemd-analyze syscall-filter group."""
    if name in cache:
        return cache[name]
    r = run(["systemd-analyze", "syscall-filter", name])
    assert r.returncode == 0, r.stderr
    calls = set()
    for line in r.stdout.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        calls |= expand_syscall_group(line) if line.startswith("@") else {line}
    cache[name] = calls
    return calls


def allowed_syscalls(settings):
    """The allow list that the unit's SystemCallFilter= lines make, in
    order: the first (positive) line starts it, "~" lines remove from it,
    later positive lines add to it."""
    allowed = None
    for k, v in settings:
        if k != "SystemCallFilter":
            continue
        deny = v.startswith("~")
        names = v.lstrip("~").split()
        calls = set()
        for n in names:
            calls |= expand_syscall_group(n) if n.startswith("@") else {n}
        if allowed is None:
            assert not deny, "the unit's filter is an allow list"
            allowed = calls
        elif deny:
            allowed -= calls
        else:
            allowed |= calls
    return allowed


class AsTheUnitRunsItTest(unittest.TestCase):
    """The proxy started as the unit starts it, without systemd: root, in
    the unit's group, [proxy] user, setpriv with the unit's bounding set
    and no_new_privs, under strace -f for its system calls."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-asunit-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)
        self.settings = service_settings(UNIT)
        # The user and group the proxy drops to; systemd makes the
        # directories root:GROUP with the unit's modes.
        self.user = "nobody"
        self.group = grp.getgrgid(pwd.getpwnam(self.user).pw_gid).gr_name
        d = dict(self.settings)
        self.state = os.path.join(self.dir, "state")
        self.runtime = os.path.join(self.dir, "run")
        for path, mode in ((self.state, d["StateDirectoryMode"]),
                           (self.runtime, d["RuntimeDirectoryMode"])):
            os.mkdir(path)
            os.chown(path, 0, grp.getgrnam(self.group).gr_gid)
            os.chmod(path, int(mode, 8))
        self.port = free_port()
        self.metrics = free_port()
        self.conf = os.path.join(self.dir, "proxy.conf")
        with open(self.conf, "w") as f:
            f.write("[proxy]\nhostname = mx.example.test\nworkers = 2\nshutdown_grace = 5s\n"
                    "user = %s\nstate_dir = %s\ncontrol_socket = %s/control.sock\n"
                    "[backend]\naddress = %s:%d\n"
                    "[listener smtp]\naddress = 127.0.0.1:%d\nkind = smtp\n"
                    "[certificate mx]\ncert = %s/mx-ecdsa-chain.crt\nkey = %s/mx-ecdsa.key\n"
                    "[metrics]\naddress = 127.0.0.1:%d\n" % (
                        self.user, self.state, self.runtime, self.sink.host, self.sink.port,
                        self.port, CERTS, CERTS, self.metrics))
        self.trace = os.path.join(self.dir, "trace")
        self.log_path = os.path.join(self.dir, "proxy.log")

    def start(self):
        caps = ["+" + c[len("CAP_"):].lower()
                for c in dict(self.settings)["CapabilityBoundingSet"].split()]
        argv = ["strace", "-f", "-qq", "-o", self.trace,
                "setpriv", "--no-new-privs", "--bounding-set", ",".join(["-all"] + caps),
                "--inh-caps", "-all", "--regid", self.group, "--clear-groups", "--",
                PLAIN_PROXY_BIN, "-c", self.conf]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        self.addCleanup(self.stop_all)
        try:
            wait_port("127.0.0.1", self.port, timeout=15)
        except Exception:
            raise AssertionError("did not start:\n" + self.log_text())
        m = re.search(r"event=privsep_parent pid=(\d+) child=(\d+)", self.wait_log("privsep_parent"))
        return int(m.group(1)), int(m.group(2))

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=10.0):
        for _ in range(int(timeout / 0.05)):
            text = self.log_text()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError("log never showed %r:\n%s" % (needle, self.log_text()))

    def stop_all(self):
        """Ends what is left by process id (parent, child, strace)."""
        if self.proc.poll() is None:
            for pid in getattr(self, "pids", ()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()

    def syscalls(self):
        """The calls made from the proxy's execve on (setpriv's before it
        are systemd's part): by that process and every one after it."""
        names, started = set(), False
        with open(self.trace) as f:
            for line in f:
                m = re.match(r"\d+\s+([a-z_0-9]+)\((.*)", line)
                if not m:
                    continue
                if not started:
                    started = (m.group(1) == "execve" and
                               m.group(2).startswith('"%s"' % PLAIN_PROXY_BIN) and
                               line.rstrip().endswith("= 0"))
                    continue
                names.add(m.group(1))
        assert started, "no execve of the proxy in the trace"
        return names

    def test_reload_stop_and_system_calls_within_the_unit(self):
        parent, child = self.start()
        self.pids = (parent, child)
        self.assertEqual(os.stat("/proc/%d" % child).st_uid, pwd.getpwnam(self.user).pw_uid)
        # A session through it, TLS included.
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        s.starttls()
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: as the unit\r\n\r\nx\r\n")
        s.quit()
        self.sink.wait_messages(1)
        # The control socket in the runtime directory, made by the child.
        r = run([PLAIN_PROXY_BIN, "-c", self.conf, "memory", "list"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self.log_text())
        # ExecReload: SIGHUP to MAINPID, forwarded to the child (CAP_KILL).
        os.kill(parent, signal.SIGHUP)
        self.wait_log("event=reload result=ok")
        # systemctl stop: SIGTERM to MAINPID (systemd signals the whole
        # control group; the parent's forwarding is what the test sees).
        os.kill(parent, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("did not stop on SIGTERM to the parent:\n" + self.log_text())
        self.assertEqual(self.proc.returncode, 0, self.log_text())
        self.assertIn("event=stopped", self.log_text())
        # The STARTTLS memory's state file, written by the child at stop.
        self.assertTrue(os.path.exists(os.path.join(self.state, "starttls-memory.state")),
                        os.listdir(self.state))
        # Every system call made is one the unit's filter allows.
        allowed = allowed_syscalls(self.settings)
        made = self.syscalls()
        self.assertIn("setuid", made)
        self.assertIn("prlimit64", made)
        self.assertEqual(made - allowed, set(),
                         "system calls SystemCallFilter= would refuse")


def dockerfile_stages(path):
    """[(from_line, [(INSTRUCTION, argument)])] with continuations joined."""
    with open(path) as f:
        lines = [l for l in f.read().split("\n") if not l.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    stages = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        ins, _, arg = line.partition(" ")
        ins = ins.upper()
        if ins == "FROM":
            stages.append((arg, []))
        else:
            stages[-1][1].append((ins, arg.strip()))
    return stages


def apt_installed(stage):
    """Packages of the stage's `apt-get install` commands."""
    pkgs = set()
    for ins, arg in stage[1]:
        if ins != "RUN":
            continue
        for cmd in re.split(r"&&|;", arg):
            words = shlex.split(cmd)
            if "apt-get" in words and "install" in words:
                pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return pkgs


def base_packages():
    """What every Debian root has, debian:12-slim's included: the
    Essential and required packages and what they depend on, from this
    machine's dpkg database."""
    r = run(["dpkg-query", "-W", "-f",
             "${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\n"])
    deps, roots = {}, []
    for line in r.stdout.splitlines():
        name, essential, prio, rel = line.split("\t")
        deps[name] = {re.split(r"[ :(]", alt.strip())[0]
                      for item in rel.split(",") for alt in item.split("|") if alt.strip()}
        if essential == "yes" or prio == "required":
            roots.append(name)
    seen = set()
    while roots:
        p = roots.pop()
        if p in seen or p not in deps:
            continue
        seen.add(p)
        roots.extend(deps[p])
    return seen


def package_of(path):
    for p in (path, os.path.realpath(path), path.replace("/usr/lib/", "/lib/", 1)):
        r = run(["dpkg", "-S", p])
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    raise AssertionError("no package has " + path)


class ContainerFilesTest(unittest.TestCase):

    def setUp(self):
        self.stages = dockerfile_stages(DOCKERFILE)
        self.build, self.runtime = self.stages[0], self.stages[-1]

    def test_two_stages_on_debian_12_slim(self):
        self.assertEqual(len(self.stages), 2)
        self.assertEqual(self.build[0], "debian:12-slim AS build")
        self.assertEqual(self.runtime[0], "debian:12-slim")
        copies = [a for i, a in self.runtime[1] if i == "COPY"]
        self.assertIn("--from=build /src/proxy/smtp-tls-proxy /usr/sbin/smtp-tls-proxy", copies)

    def test_runtime_stage_installs_every_library_the_binary_needs(self):
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            run(["readelf", "-d", PLAIN_PROXY_BIN]).stdout)
        self.assertIn("libsystemd.so.0", needed)
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", run(["ldd", PLAIN_PROXY_BIN]).stdout,
                                re.M))
        installed = apt_installed(self.runtime)
        base = base_packages()
        self.assertIn("libc6", base)
        for soname in needed:
            pkg = package_of(paths[soname])
            self.assertTrue(pkg in installed or pkg in base,
                            "%s (%s) is not installed by the runtime stage" % (soname, pkg))
            # The Dockerfile names the library packages of the build too
            # (zlib1g, libsystemd0 are in the base but listed all the same).
            if pkg != "libc6":
                self.assertIn(pkg, installed)
        # And nothing to build with.
        self.assertEqual({p for p in installed if p.endswith("-dev") or p in ("gcc", "make")},
                         set())

    def test_build_stage_has_the_build_packages_of_install_deps(self):
        with open(INSTALL_DEPS) as f:
            m = re.search(r'^BUILD="([^"]*)"', f.read(), re.M)
        wanted = set(m.group(1).split()) - {"android-boringssl"}  # tools, not the library
        self.assertEqual(wanted - apt_installed(self.build), set())

    def test_runs_as_a_non_root_user_with_a_healthcheck(self):
        ins = self.runtime[1]
        users = [a for i, a in ins if i == "USER"]
        self.assertEqual(users, ["smtp-tls-proxy"])
        self.assertTrue(any(i == "RUN" and "useradd" in a and "smtp-tls-proxy" in a
                            for i, a in ins))
        health = [a for i, a in ins if i == "HEALTHCHECK"]
        self.assertEqual(len(health), 1)
        self.assertIn('CMD ["/usr/sbin/smtp-tls-proxy", "healthcheck", "-c", '
                      '"/etc/smtp-tls-proxy/smtp-tls-proxy.conf"]', health[0])
        self.assertIn(("ENTRYPOINT", '["/usr/sbin/smtp-tls-proxy"]'), ins)
        self.assertIn(("CMD", '["-c", "/etc/smtp-tls-proxy/smtp-tls-proxy.conf"]'), ins)
        self.assertIn(("COPY", "configs/sidecar.conf /etc/smtp-tls-proxy/smtp-tls-proxy.conf"),
                      ins)

    def test_exposed_ports_are_the_sidecar_listeners(self):
        exposed = set()
        for i, a in self.runtime[1]:
            if i == "EXPOSE":
                exposed |= {int(p) for p in a.split()}
        with open(SIDECAR) as f:
            ports = {int(p) for p in re.findall(r"^address = 0\.0\.0\.0:(\d+)", f.read(), re.M)}
        self.assertEqual(ports, {2525, 5870, 4650, 9925})
        self.assertEqual(exposed, ports)
        # All above 1024: the non-root user binds them without a capability.
        self.assertTrue(all(p > 1024 for p in ports))

    def test_compose_project(self):
        with open(COMPOSE) as f:
            c = yaml.safe_load(f)
        proxy, mta = c["services"]["proxy"], c["services"]["mta"]
        self.assertEqual(proxy["build"], ".")
        self.assertEqual(set(proxy["ports"]) - {"127.0.0.1:9925:9925"},
                         {"25:2525", "587:5870", "465:4650"})
        self.assertEqual(proxy["environment"]["SMTP_TLS_PROXY__BACKEND__ADDRESS"], "mta:25")
        mounts = {v.split(":")[1]: v for v in proxy["volumes"]}
        self.assertTrue(mounts["/etc/smtp-tls-proxy/smtp-tls-proxy.conf"].endswith(":ro"))
        self.assertTrue(mounts["/etc/smtp-tls-proxy/certs"].endswith(":ro"))
        self.assertEqual(proxy["depends_on"]["mta"]["condition"], "service_healthy")
        self.assertNotIn("ports", mta)  # only the proxy reaches the MTA
        self.assertEqual(mta["build"], "configs/compose")
        with open(os.path.join(MTA_DIR, "Dockerfile")) as f:
            self.assertIn("HEALTHCHECK", f.read())
        # The MTA reads what the sidecar's identity sends.
        with open(os.path.join(MTA_DIR, "main.cf")) as f:
            main_cf = f.read()
        with open(SIDECAR) as f:
            self.assertIn("identity = proxy-v2", f.read())
        self.assertRegex(main_cf, r"(?m)^smtpd_upstream_proxy_protocol = haproxy$")

    def test_sidecar_conf_checks_with_the_compose_environment(self):
        with open(COMPOSE) as f:
            env = dict(yaml.safe_load(f)["services"]["proxy"]["environment"])
        # The image's certificate paths, pointed at the test PKI the same way.
        env["SMTP_TLS_PROXY__CERTIFICATE__MX__CERT"] = os.path.join(CERTS, "mx-ecdsa-chain.crt")
        env["SMTP_TLS_PROXY__CERTIFICATE__MX__KEY"] = os.path.join(CERTS, "mx-ecdsa.key")
        # "mta" is the compose service's name: resolve it as compose's DNS
        # would, through /etc/hosts in a private mount namespace.
        d = tempfile.mkdtemp(prefix="stp-hosts-")
        self.addCleanup(shutil.rmtree, d, True)
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 mta\n")
        script = 'mount --bind "$1" /etc/hosts && exec "$2" -t -c "$3"'
        r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                 hosts, PLAIN_PROXY_BIN, SIDECAR], env=env)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("configuration ok (3 listeners)", out)
        self.assertIn("[backend] address = mta:25 (from the environment: "
                      "SMTP_TLS_PROXY__BACKEND__ADDRESS)", out)
        self.assertIn("[proxy] hostname = mx.example.net (from the environment: "
                      "SMTP_TLS_PROXY__PROXY__HOSTNAME)", out)

    def test_dockerignore_keeps_keys_and_build_output_out(self):
        with open(os.path.join(ROOT, ".dockerignore")) as f:
            ignored = {l.strip() for l in f if l.strip() and not l.startswith("#")}
        for p in (".git", "build", "certs/test", "proxy/smtp-tls-proxy"):
            self.assertIn(p, ignored)


if __name__ == "__main__":
    unittest.main()

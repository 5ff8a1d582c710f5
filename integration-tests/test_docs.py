"""The documentation that installs (README "Installing"): make install
with PREFIX and DESTDIR puts the binary, the man pages, the systemd unit
and the example configuration in place; smtp-tls-proxy.conf(5), which
make generates from the key table, documents every key that
`smtp-tls-proxy --keys` lists, with its default and meaning;
smtp-tls-proxy(8) names every option and command of the usage texts;
and mandoc -T lint finds nothing wrong in either page.
"""
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

from proxyproc import PROXY_BIN, ROOT
from tlsharness import TOOL_TIMEOUT, cert

# make install may have to build the binary first.
MAKE_TIMEOUT = 900
MAN8 = "usr/share/man/man8/smtp-tls-proxy.8"
MAN5 = "usr/share/man/man5/smtp-tls-proxy.conf.5"
CONF_DIR = "etc/smtp-tls-proxy"
UNIT = os.path.join(ROOT, "configs", "systemd", "smtp-tls-proxy.service")
GENERATOR = os.path.join(ROOT, "man", "gen-conf-man.py")
TEMPLATE = os.path.join(ROOT, "man", "smtp-tls-proxy.conf.5.in")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=kw.pop("timeout", TOOL_TIMEOUT), **kw)


def keys_of(text):
    """{section: [(name, default or None, doc)]} from --keys, read on its
    own terms (not with the generator's parser): "[section]", then
    "NAME DEFAULT DOC" lines."""
    sections = {}
    current = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("["):
            current = line[1:-1]
            sections[current] = []
            continue
        name, default, doc = line.split(None, 2)
        sections[current].append((name, None if default == "-" else default, doc))
    return sections


def unescape(s):
    return s.replace("\\&", "").replace("\\(dq", '"').replace("\\e", "\\")


def mdoc_words(line):
    """The words a line of mdoc source shows (a macro line without its
    macro name)."""
    if line.startswith(".") and not line.startswith(".\\\""):
        return " ".join(unescape(w) for w in shlex.split(line.replace("\\&", ""))[1:])
    return unescape(line)


def entries_of(page):
    """{subsection title: {key: the words of its entry}} from the source
    of smtp-tls-proxy.conf(5): an entry is ".It Cm KEY" and the lines up to
    the next item, list end or heading."""
    found = {}
    section = key = None
    for line in page.splitlines():
        if line.startswith((".Ss ", ".Sh ")):
            section = unescape(line[4:]).strip() if line.startswith(".Ss ") else None
            key = None
            found.setdefault(section, {})
        elif line.startswith(".It Cm ") and section is not None:
            key = mdoc_words(line).split()[1]
            found[section][key] = ""
        elif line.startswith((".It", ".El")):
            key = None
        elif key is not None:
            found[section][key] = (found[section][key] + " " + mdoc_words(line)).strip()
    return found


def rendered(path):
    """The page as the reader sees it, in plain ASCII on long lines."""
    r = run(["mandoc", "-T", "ascii", "-O", "width=200", path])
    if r.returncode != 0:
        raise AssertionError("mandoc %s: %s" % (path, r.stderr))
    return re.sub(".\b", "", r.stdout)


def options_in(text):
    return set(re.findall(r"(?<![\w/.-])(--?[a-zA-Z][\w-]*)", text))


class DocsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="stp-docs-")
        # An administrator's configuration, which make install leaves alone.
        os.makedirs(os.path.join(cls.dest, CONF_DIR))
        cls.own_conf = os.path.join(cls.dest, CONF_DIR, "smtp-tls-proxy.conf")
        with open(cls.own_conf, "w") as f:
            f.write("# the administrator's own\n")
        cls.install = run(["make", "-C", ROOT, "install", "DESTDIR=" + cls.dest, "PREFIX=/usr"],
                          timeout=MAKE_TIMEOUT)
        cls.keys = run([PROXY_BIN, "--keys"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, True)

    def installed(self, rel):
        self.assertEqual(self.install.returncode, 0,
                         "make install failed:\n" + self.install.stdout + self.install.stderr)
        path = os.path.join(self.dest, rel)
        self.assertTrue(os.path.isfile(path), "make install did not install /" + rel)
        return path

    def read_installed(self, rel):
        with open(self.installed(rel), encoding="utf-8") as f:
            return f.read()

    def test_make_install_puts_the_binary_in_prefix_sbin_and_it_runs(self):
        binary = self.installed("usr/sbin/smtp-tls-proxy")
        self.assertTrue(os.access(binary, os.X_OK))
        r = run([binary, "--version"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"^smtp-tls-proxy \d+\.\d+")

    def test_make_install_puts_both_man_pages_in_prefix_share_man(self):
        self.assertIn(".Dt SMTP-TLS-PROXY 8", self.read_installed(MAN8))
        self.assertIn(".Dt SMTP-TLS-PROXY.CONF 5", self.read_installed(MAN5))
        for rel in (MAN8, MAN5):
            self.assertEqual(os.stat(os.path.join(self.dest, rel)).st_mode & 0o777, 0o644)

    def test_make_install_adds_the_example_and_keeps_an_existing_configuration(self):
        example = self.read_installed(os.path.join(CONF_DIR, "smtp-tls-proxy.conf.example"))
        with open(os.path.join(ROOT, "configs", "example.conf"), encoding="utf-8") as f:
            self.assertEqual(example, f.read())
        with open(self.own_conf) as f:
            self.assertEqual(f.read(), "# the administrator's own\n")

    def test_make_install_puts_the_systemd_unit_in_lib_systemd_system_for_prefix_usr(self):
        rel = "lib/systemd/system/smtp-tls-proxy.service"
        if not os.path.exists(UNIT):
            self.assertEqual(self.install.returncode, 0, self.install.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dest, rel)))
            return
        unit = self.read_installed(rel)
        exec_start = [l for l in unit.splitlines() if l.startswith("ExecStart=")]
        self.assertTrue(exec_start, unit)
        for line in exec_start:
            self.assertRegex(line, r"^ExecStart=[-@:+!]*/usr/sbin/smtp-tls-proxy( |$)")

    def test_make_install_installs_exactly_its_files_under_destdir(self):
        self.assertEqual(self.install.returncode, 0, self.install.stderr)
        wanted = {"usr/sbin/smtp-tls-proxy", MAN8, MAN5,
                  os.path.join(CONF_DIR, "smtp-tls-proxy.conf"),
                  os.path.join(CONF_DIR, "smtp-tls-proxy.conf.example")}
        if os.path.exists(UNIT):
            wanted.add("lib/systemd/system/smtp-tls-proxy.service")
        got = {os.path.relpath(os.path.join(d, f), self.dest)
               for d, _, files in os.walk(self.dest) for f in files}
        self.assertEqual(got, wanted)

    def test_every_configuration_key_is_in_the_conf_man_page_with_its_default(self):
        self.assertEqual(self.keys.returncode, 0, self.keys.stderr)
        sections = keys_of(self.keys.stdout)
        self.assertIn("proxy", sections)
        self.assertIn("listener NAME", sections)
        entries = entries_of(self.read_installed(MAN5))
        text = " ".join(rendered(self.installed(MAN5)).split())
        missing = []
        for section, keys in sections.items():
            documented = entries.get("[%s]" % section)
            if documented is None:
                missing.append("[%s] (no subsection)" % section)
                continue
            for name, default, doc in keys:
                entry = documented.get(name)
                if entry is None:
                    missing.append("[%s] %s" % (section, name))
                    continue
                self.assertIn(" ".join(doc.split()), entry, "[%s] %s" % (section, name))
                if default is None:
                    self.assertIn("No default.", entry, "[%s] %s" % (section, name))
                else:
                    self.assertRegex(entry, r"Default: %s(\s|$)" % re.escape(default),
                                     "[%s] %s" % (section, name))
                    self.assertIn("Default: `%s'" % default, text, "[%s] %s" % (section, name))
        self.assertEqual(missing, [], "keys of --keys without an entry in smtp-tls-proxy.conf(5)")

    def test_the_conf_page_documents_no_key_that_does_not_exist(self):
        sections = keys_of(self.keys.stdout)
        entries = entries_of(self.read_installed(MAN5))
        for title, keys in entries.items():
            if title is None or not title.startswith("["):
                continue
            self.assertIn(title[1:-1], sections, title)
            self.assertEqual(sorted(keys), sorted(k[0] for k in sections[title[1:-1]]), title)

    def test_mandoc_lint_finds_no_warning_in_either_man_page(self):
        for rel in (MAN8, MAN5):
            path = self.installed(rel)
            r = run(["mandoc", "-T", "lint", "-W", "warning", path])
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), rel)

    def test_mandoc_lint_style_messages_are_only_manuals_this_machine_lacks(self):
        for rel in (MAN8, MAN5):
            path = self.installed(rel)
            r = run(["mandoc", "-T", "lint", "-W", "style", path])
            # Which manuals a cross-reference finds depends on what this
            # machine has installed (the pages' own pair is in DESTDIR):
            # that style message is allowed, no other.
            messages = [l for l in (r.stdout + r.stderr).splitlines()
                        if l.startswith("mandoc: " + path)]
            others = [l for l in messages if "STYLE: referenced manual not found" not in l]
            self.assertEqual(others, [], rel)

    def test_every_option_and_command_of_the_usage_is_in_the_man_page(self):
        usage = run([PROXY_BIN, "-h"])
        self.assertEqual(usage.returncode, 0, usage.stderr)
        options = options_in(usage.stdout)
        self.assertTrue({"-c", "-t", "-d", "-h", "--keys", "--version"} <= options, options)
        commands = set()
        words = set()
        for m in re.finditer(r"smtp-tls-proxy((?:[ \t]+\[[^\]\n]*\])*)[ \t]+([a-z]+)(.*)",
                             usage.stdout):
            commands.add(m.group(2))
            rest = re.sub(r"\[[^\]]*\]", " ", m.group(3))
            words |= set(re.findall(r"(?<![\w-])([a-z]+)(?![\w-])", rest))
        self.assertTrue({"memory", "report"} <= commands, commands)
        for command in sorted(commands - {"memory"}):
            # memory's words go to the running proxy; the others have a
            # usage of their own.
            r = run([PROXY_BIN, command, "--help"])
            if r.returncode == 0 and r.stdout.startswith("usage: smtp-tls-proxy " + command):
                options |= options_in(r.stdout)
        page = rendered(self.installed(MAN8))
        synopsis = page[page.index("SYNOPSIS"):page.index("DESCRIPTION")]
        missing = [o for o in sorted(options)
                   if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o), page)]
        missing += ["command " + c for c in sorted(commands | words)
                    if not re.search(r"\b%s\b" % c, synopsis)]
        self.assertEqual(missing, [], "in the usage texts but not in smtp-tls-proxy(8)")

    def test_the_conf_page_example_is_a_valid_configuration(self):
        page = self.read_installed(MAN5)
        example = page[page.index(".Sh EXAMPLES"):]
        example = example[example.index(".Bd -literal"):]
        example = example[example.index("\n") + 1:example.index("\n.Ed")]
        example = re.sub(r"(?m)^cert = .*$", "cert = " + cert("mx-ecdsa-chain.crt"), example)
        example = re.sub(r"(?m)^key = .*$", "key = " + cert("mx-ecdsa.key"), example)
        path = os.path.join(self.dest, "example-check.conf")
        self.addCleanup(os.unlink, path)
        with open(path, "w") as f:
            f.write(unescape(example))
        r = run([PROXY_BIN, "-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("configuration ok (3 listeners)", r.stdout)

    def test_the_page_generator_refuses_a_section_the_template_has_no_place_for(self):
        keys = self.keys.stdout + "\n[new_section]\n%-18s %-14s %s\n" % ("knob", "1", "a knob")
        r = run([sys_python(), GENERATOR, TEMPLATE, "-"], input=keys)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("[new_section]", r.stderr)

    def test_the_page_generator_refuses_a_keys_line_it_cannot_read_exactly(self):
        # A default with a blank in it would shift the doc: not guessed.
        line = "%-18s %-14s %s" % ("knob", "a b", "a knob")
        keys = self.keys.stdout.replace("[proxy]\n", "[proxy]\n" + line + "\n", 1)
        r = run([sys_python(), GENERATOR, TEMPLATE, "-"], input=keys)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("knob", r.stderr)


def sys_python():
    return shutil.which("python3") or "/usr/bin/python3"


if __name__ == "__main__":
    unittest.main()

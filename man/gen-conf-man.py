#!/usr/bin/env python3
"""gen-conf-man.py - writes smtp-tls-proxy.conf(5) from the key table.

  smtp-tls-proxy --keys > keys.txt
  gen-conf-man.py man/smtp-tls-proxy.conf.5.in keys.txt > man/smtp-tls-proxy.conf.5

KEYS (default: standard input) is what `smtp-tls-proxy --keys` prints
(config_print_keys in proxy/config/config_keys.c): a "[section]" line,
then one line per key, "NAME DEFAULT DOC" with NAME padded to 18 columns
and DEFAULT ("-": none, or set by kind) to 14, a blank line between
sections. The TEMPLATE is mdoc with one line "@KEYS section@" (for
example "@KEYS proxy@", "@KEYS listener NAME@") where each section's
keys go, as a tag list: the key, its one-line meaning, its default.

It fails, writing nothing, when a section of KEYS has no place in the
template or the template names a section KEYS lacks, so that no key can
go undocumented; and when a line of KEYS does not have the layout above
(a default with a blank in it, for one), so that nothing is misread.
"""
import re
import sys

NAME_COLUMNS = 18
DEFAULT_COLUMNS = 14
MARKER = re.compile(r"^@KEYS ([^@]+)@$")


class KeysError(Exception):
    pass


def parse_keys(text):
    """Returns [(section, [(name, default or None, doc), ...]), ...]."""
    sections = []
    seen = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("["):
            if not line.endswith("]") or line in seen:
                raise KeysError("line %d: a section header [name], once: %r" % (number, line))
            seen.add(line)
            sections.append((line[1:-1], []))
            continue
        if not sections:
            raise KeysError("line %d: a key before any section: %r" % (number, line))
        parts = line.split(None, 2)
        if len(parts) != 3 or line[0] == " ":
            raise KeysError("line %d: expected NAME DEFAULT DOC: %r" % (number, line))
        name, default, doc = parts
        # The columns say where each field begins: a default with a blank
        # in it would put the doc's start elsewhere.
        default_at = max(NAME_COLUMNS, len(name)) + 1
        doc_at = default_at + max(DEFAULT_COLUMNS, len(default)) + 1
        if line.find(default, len(name)) != default_at or line.find(doc, default_at) != doc_at:
            raise KeysError("line %d: fields are not where config_print_keys puts them "
                            "(a blank in a default?): %r" % (number, line))
        keys = sections[-1][1]
        if any(k[0] == name for k in keys):
            raise KeysError("line %d: [%s] %s is listed twice" % (number, sections[-1][0], name))
        keys.append((name, None if default == "-" else default, doc))
    if not sections:
        raise KeysError("no sections: is this the output of smtp-tls-proxy --keys?")
    return sections


def text_lines(s, width=78):
    """|s| as roff text lines of at most |width| bytes where it has blanks
    to break at (mandoc -T lint asks for lines of 80 at most)."""
    out = []
    line = ""
    for word in s.replace("\\", "\\e").split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = line + " " + word if line else word
    out.append(line)
    return ["\\&" + l if l[:1] in (".", "'") else l for l in out]


def macro_arg(s):
    """|s| as one argument of an mdoc macro (never read as a macro name
    or as punctuation)."""
    s = s.replace("\\", "\\e")
    if " " in s or '"' in s:
        return '"\\&' + s.replace('"', '\\(dq') + '\\&"'
    return "\\&" + s + "\\&"


def key_list(keys):
    out = [".Bl -tag -width Ds"]
    for name, default, doc in keys:
        out.append(".It Cm " + macro_arg(name))
        out.extend(text_lines(doc if doc.endswith(".") else doc + "."))
        if default is None:
            out.append("No default.")
        else:
            out.append("Default:")
            out.append(".Ql " + macro_arg(default) + " .")
    out.append(".El")
    return out


def generate(template, sections):
    table = dict(sections)
    placed = set()
    out = []
    for number, line in enumerate(template.splitlines(), 1):
        m = MARKER.match(line)
        if m is None:
            out.append(line)
            continue
        section = m.group(1)
        if section not in table:
            raise KeysError("template line %d: smtp-tls-proxy --keys has no [%s]"
                            % (number, section))
        if section in placed:
            raise KeysError("template line %d: [%s] is placed twice" % (number, section))
        placed.add(section)
        out.extend(key_list(table[section]))
    missing = [s for s, _ in sections if s not in placed]
    if missing:
        raise KeysError("the template has no @KEYS ...@ line for: %s (add one, with a few "
                        "words about the section)" % ", ".join("[%s]" % s for s in missing))
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: gen-conf-man.py TEMPLATE [KEYS]\n")
        return 2
    with open(argv[1], encoding="utf-8") as f:
        template = f.read()
    if len(argv) == 3 and argv[2] != "-":
        with open(argv[2], encoding="utf-8") as f:
            keys = f.read()
    else:
        keys = sys.stdin.read()
    try:
        page = generate(template, parse_keys(keys))
    except KeysError as e:
        sys.stderr.write("gen-conf-man.py: %s\n" % e)
        return 1
    sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

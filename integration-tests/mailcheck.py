"""Reading the messages a backend received: header fields, the header
block, the X-TLS-Status pairs. One copy of each for every test module.
"""
import email
import re

# RFC 5322 2.2.3: a folded field is unfolded by removing every CRLF that
# is immediately followed by white space (the white space stays).
_FOLD = re.compile(r"\r\n(?=[ \t])")


def header_values(data, name):
    """All values of header field |name| (str or bytes, case-insensitive)
    in message |data| (bytes), in order, each unfolded as RFC 5322 2.2.3
    says; [] when there is none."""
    if isinstance(name, bytes):
        name = name.decode()
    msg = email.message_from_bytes(data)
    return [_FOLD.sub("", str(v)) for v in (msg.get_all(name) or [])]


def squeeze(text):
    """|text| with each run of white space as one space and none at either
    end: for matching a field's words wherever the proxy folded it (an
    unfolded fold leaves its tab)."""
    return " ".join(text.split())


def header_block(data):
    """The header section of message |data| (CRLF line ends), without the
    blank line that ends it."""
    return data.split(b"\r\n\r\n", 1)[0]


def status_pairs(value):
    """X-TLS-Status value -> dict (keys in order of appearance)."""
    pairs = {}
    for part in value.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep:
            pairs[k] = v
    return pairs

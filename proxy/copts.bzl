# Compiler options every layer of the daemon builds with; the same
# warnings as the Makefile's WARN.
PROXY_COPTS = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wformat=2",
    "-Wvla",
    "-D_GNU_SOURCE",
]

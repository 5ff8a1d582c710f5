"""@rules_cc//:defs.bzl: same native C/C++ rules as @rules_cc//cc:defs.bzl."""

load(
    "//cc:defs.bzl",
    _cc_binary = "cc_binary",
    _cc_import = "cc_import",
    _cc_library = "cc_library",
    _cc_proto_library = "cc_proto_library",
    _cc_test = "cc_test",
    _cc_toolchain = "cc_toolchain",
    _cc_toolchain_suite = "cc_toolchain_suite",
    _fdo_prefetch_hints = "fdo_prefetch_hints",
    _fdo_profile = "fdo_profile",
    _objc_import = "objc_import",
    _objc_library = "objc_library",
)

cc_binary = _cc_binary
cc_import = _cc_import
cc_library = _cc_library
cc_proto_library = _cc_proto_library
cc_test = _cc_test
cc_toolchain = _cc_toolchain
cc_toolchain_suite = _cc_toolchain_suite
fdo_prefetch_hints = _fdo_prefetch_hints
fdo_profile = _fdo_profile
objc_import = _objc_import
objc_library = _objc_library

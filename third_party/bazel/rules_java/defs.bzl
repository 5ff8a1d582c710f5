"""@rules_java//:defs.bzl: same native Java rules as @rules_java//java:defs.bzl."""

load(
    "//java:defs.bzl",
    _java_binary = "java_binary",
    _java_import = "java_import",
    _java_library = "java_library",
    _java_lite_proto_library = "java_lite_proto_library",
    _java_package_configuration = "java_package_configuration",
    _java_plugin = "java_plugin",
    _java_proto_library = "java_proto_library",
    _java_runtime = "java_runtime",
    _java_test = "java_test",
    _java_toolchain = "java_toolchain",
)

java_binary = _java_binary
java_import = _java_import
java_library = _java_library
java_lite_proto_library = _java_lite_proto_library
java_package_configuration = _java_package_configuration
java_plugin = _java_plugin
java_proto_library = _java_proto_library
java_runtime = _java_runtime
java_test = _java_test
java_toolchain = _java_toolchain

"""The Java rules that Bazel 4's own @bazel_tools BUILD files load, as Bazel's built-in ones.

The real rules_java of that time wraps the same native rules; this project builds no Java, so
only the names have to resolve for Bazel to load its tools (its JDK toolchains among them).
"""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_lite_proto_library = native.java_lite_proto_library
java_package_configuration = native.java_package_configuration
java_plugin = native.java_plugin
java_proto_library = native.java_proto_library
java_runtime = native.java_runtime
java_test = native.java_test
java_toolchain = native.java_toolchain

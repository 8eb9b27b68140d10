"""Repositories that Bazel's own tools need, defined so that Bazel 4 builds offline."""

_STAND_INS = ["rules_cc", "rules_java", "remote_coverage_tools"]

def _is_bazel_4():
    # Debian's bazel-bootstrap 4.2.3 reports no version at all.
    version = native.bazel_version
    return not version or version.startswith("4.")

def sscs_bazel_repositories():
    """Points Bazel 4 at the stand-ins in third_party/bazel; later versions fetch the real ones.

    Bazel adds its own definitions of these names after the WORKSPACE only where the WORKSPACE
    has none, so these take their place.
    """
    if not _is_bazel_4():
        return
    for name in _STAND_INS:
        native.local_repository(name = name, path = "third_party/bazel/" + name)

#!/bin/sh
echo "bazel coverage needs the real remote_coverage_tools; the offline stand-in in" \
     "third_party/bazel/remote_coverage_tools has none (use pytest for coverage)." >&2
exit 1

#!/bin/sh
# The Python interpreter of the Bazel build (//tools/bazel:venv_python_toolchain): the one of
# the project's virtual environment, where `pip install -e ".[test]"` put TensorFlow and the
# other dependencies. Bazel runs this file through a symlink in a runfiles tree; the checkout
# it belongs to is found by resolving that link, so a clone anywhere uses its own .venv.
# SSCS_PYTHON, when set, names another interpreter (one with the same packages installed).
set -eu
if [ -n "${SSCS_PYTHON:-}" ]; then
  exec "$SSCS_PYTHON" "$@"
fi
checkout=$(dirname "$(dirname "$(dirname "$(readlink -f "$0")")")")
if [ -x "$checkout/.venv/bin/python" ]; then
  exec "$checkout/.venv/bin/python" "$@"
fi
echo "tools/bazel/python.sh: no virtual environment at $checkout/.venv; create it as README.md" \
     "says (python3 -m venv .venv && . .venv/bin/activate && pip install -e \".[test]\")," \
     "or set SSCS_PYTHON to an interpreter that has the dependencies." >&2
exit 1

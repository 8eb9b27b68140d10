"""Runs one test module with pytest, for a py_test target of tools/bazel/defs.bzl.

Bazel starts this in the runfiles copy of the checkout with the module's path as argument;
pytest then runs as `python -m pytest MODULE` from the checkout would: pytest.ini makes the
runfiles root its rootdir, tests/conftest.py its conftest. Bazel's test environment adds:
XML_OUTPUT_FILE (per-test results for Bazel), TEST_TMPDIR (the writable scratch folder) and
TESTBRIDGE_TEST_ONLY (`bazel test --test_filter=EXPR`, passed as pytest's -k EXPR).
"""

import os
import sys

import pytest

# pytest's exit status when no test was selected.
_NO_TESTS = 5


def _shared_data():
  """../shared/data beside the real checkout: tests/testing.py looks beside the runfiles
  copy, where it never is. Found through pytest.ini, a symlink to the checkout's file."""
  checkout = os.path.dirname(os.path.realpath("pytest.ini"))
  return os.path.join(os.path.dirname(checkout), "shared", "data")


def pytest_args(module: str, extra: list[str]) -> list[str]:
  """pytest's command line for MODULE under Bazel's test environment."""
  # The runfiles tree is read-only: no .pytest_cache.
  args = [module, "-p", "no:cacheprovider", *extra]
  if os.environ.get("XML_OUTPUT_FILE"):
    args.append(f"--junitxml={os.environ['XML_OUTPUT_FILE']}")
  if os.environ.get("TEST_TMPDIR"):
    args.append(f"--basetemp={os.path.join(os.environ['TEST_TMPDIR'], 'pytest')}")
  if os.environ.get("TESTBRIDGE_TEST_ONLY"):
    args += ["-k", os.environ["TESTBRIDGE_TEST_ONLY"]]
  return args


def main(argv: list[str]) -> int:
  if len(argv) < 2:
    raise SystemExit(f"usage: {argv[0]} TEST_MODULE [PYTEST_ARGS...]")
  if "SSCS_SHARED_DATA" not in os.environ and os.path.isdir(_shared_data()):
    os.environ["SSCS_SHARED_DATA"] = _shared_data()
  args = pytest_args(argv[1], argv[2:])
  status = pytest.main(args)
  # A --test_filter or -m that selects nothing in this module is not a failure.
  if status == _NO_TESTS and ("-k" in args or "-m" in args):
    return 0
  return int(status)


if __name__ == "__main__":
  sys.exit(main(sys.argv))

"""Helpers shared by the tests."""

import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Real annotations, GloVe subsets and reference parity files live beside the checkout; a
# fresh clone elsewhere has none, and the tests that read them skip.
SHARED_DATA = os.environ.get("SSCS_SHARED_DATA",
                             os.path.join(os.path.dirname(REPO_ROOT), "shared", "data"))


def shared_path(*parts: str) -> str:
  """Path of a file under ../shared/data; skips the calling test when it is absent."""
  path = os.path.join(SHARED_DATA, *parts)
  if not os.path.exists(path):
    pytest.skip(f"real data not available: {path} is absent (set SSCS_SHARED_DATA to its "
                "data/ directory to run this test)")
  return path

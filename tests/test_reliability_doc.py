"""docs/reliability.md's table of bad inputs stays current: every id in it is a test case,
and every case id a test uses is in it."""

import glob
import os
import re

from tests.testing import REPO_ROOT

CASE_ID = re.compile(r"(?<![A-Za-z0-9_])case_[a-z0-9_]+")


def _table_ids():
  with open(os.path.join(REPO_ROOT, "docs", "reliability.md"), encoding="utf-8") as f:
    return [m.group(1) for m in re.finditer(r"^\| `(case_[a-z0-9_]+)` \|", f.read(), re.M)]


def _test_ids():
  ids = set()
  for path in glob.glob(os.path.join(REPO_ROOT, "tests", "**", "*.py"), recursive=True):
    if os.path.basename(path) != os.path.basename(__file__):
      with open(path, encoding="utf-8") as f:
        ids.update(CASE_ID.findall(f.read()))
  return ids


def test_every_table_row_is_a_test_and_every_case_a_row():
  table = _table_ids()
  assert len(table) == len(set(table)), "an id twice in the table"
  tested = _test_ids()
  assert sorted(set(table) - tested) == [], "rows without a test"
  assert sorted(tested - set(table)) == [], "test cases missing from the table"

"""Kept query counts on the real annotation files equal the reference 2D-TAN's."""

import pytest

from data_prep import activitynet, charades_sta, convert, tacos
from tests.testing import shared_path

pytestmark = pytest.mark.shared_data


def _kept(read_splits, directory):
  splits = read_splits(shared_path("annotations", directory))
  # The converter's own rule for empty sentences applies before counting.
  for split in splits:
    convert.drop_empty_sentences(split)
  return splits


def test_charades_sta_counts():
  train, test = _kept(charades_sta.read_splits, "charades_sta")
  assert (len(train.queries), len(test.queries)) == (12404, 3720)
  # The four lines of the original release with start > end, reported by line.
  assert train.skipped.counts() == {"start >= end": 4}
  assert [loc for _, loc, _ in train.skipped.entries] == [
      "charades_sta_train.txt:8252", "charades_sta_train.txt:8440",
      "charades_sta_train.txt:9623", "charades_sta_train.txt:9624"]
  assert len(test.skipped) == 0
  # 6,672 STA videos; LEOL6 and AKKWU have only reversed lines, so no query is left.
  valid = set(open(shared_path("annotations", "charades_sta", "valid_videos.txt")).read().split())
  kept = set(train.durations) | set(test.durations)
  assert len(valid) == 6672 and valid - kept == {"LEOL6", "AKKWU"} and kept <= valid


def test_tacos_counts():
  counts = [len(s.queries) for s in _kept(tacos.read_splits, "tacos")]
  assert counts == [9790, 4436, 4001]


def test_activitynet_counts():
  train, val, test = _kept(activitynet.read_splits, "activitynet_captions")
  assert [len(s.queries) for s in (train, val, test)] == [37417, 17505, 17031]
  assert train.skipped.counts() == {"start >= end": 4}
  assert all(loc.startswith("train.json:v_") for _, loc, _ in train.skipped.entries)

"""Kept query counts on the real annotation files, per data protocol: 2D-TAN's equal the
reference 2D-TAN's; LGI's keep every query as annotated (docs/data.md)."""

import os

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


def _notes(split, protocol_name):
  return split.protocol_summary(protocol_name)["notes"]


def test_charades_sta_counts():
  train, test = _kept(charades_sta.read_splits, "charades_sta")
  tan = [s.protocol_summary("tan")["queries"] for s in (train, test)]
  lgi = [s.protocol_summary("lgi")["queries"] for s in (train, test)]
  assert tan == [12404, 3720] and lgi == [12408, 3720]
  # The four lines of the original release with start > end, reported by line; 2D-TAN drops
  # them (three also start at or after the duration), LGI keeps them.
  assert _notes(train, "tan") == {"dropped: start >= end": 4,
                                  "end clipped to the duration": 1802}
  assert [q.query_id for q in train.queries if q.flags & 4] == [
      "charades_sta_train.txt:8252", "charades_sta_train.txt:8440",
      "charades_sta_train.txt:9623", "charades_sta_train.txt:9624"]
  assert _notes(train, "lgi") == {"kept: end past the duration": 1805, "kept: start >= end": 4,
                                  "kept: start at or past the video's end": 3}
  # 562 of the 3,720 test ground truths end after the duration: LGI's test GT is unclipped.
  assert _notes(test, "lgi") == {"kept: end past the duration": 562}
  assert _notes(test, "tan") == {"end clipped to the duration": 562}
  assert len(train.skipped) == 0 and len(test.skipped) == 0
  # 6,672 STA videos; under 2D-TAN's rule LEOL6 and AKKWU have no query left.
  valid = set(open(shared_path("annotations", "charades_sta", "valid_videos.txt")).read().split())
  tan_videos = {q.video_id for s in (train, test) for q in s.queries if not q.flags & 12}
  all_videos = set(train.durations) | set(test.durations)
  assert len(valid) == 6672 and all_videos == valid and valid - tan_videos == {"LEOL6", "AKKWU"}
  assert (train.protocol_summary("lgi")["videos"] - train.protocol_summary("tan")["videos"]
          == 2)


def test_charades_sta_vslnet_variant_counts():
  """VSLNet's variant (durations from charades.json, two decimals): its train file corrects
  the four reversed lines of the release, so every protocol keeps all 12,408 / 3,720."""
  original = _kept(charades_sta.read_splits, "charades_sta")
  train, test = _kept(charades_sta.read_splits, os.path.join("charades_sta", "vslnet_variant"))
  for name in ("tan", "lgi", "vslnet"):
    assert [s.protocol_summary(name)["queries"] for s in (train, test)] == [12408, 3720]
  assert _notes(train, "vslnet") == {"end clipped to the duration": 1802}
  assert _notes(test, "vslnet") == {"end clipped to the duration": 562}
  # The original release under VSLNet's rule: all kept, the reversed four as they are.
  assert _notes(original[0], "vslnet") == {"end clipped to the duration": 1805,
                                           "kept: start >= end": 4,
                                           "kept: start at or past the video's end": 3}
  fixed = {q.query_id: (q.start, q.end) for q in train.queries}
  assert fixed["charades_sta_train.txt:8252"] == (0.0, 2.5)  # LEOL6, 8.0 7.0 in the release
  assert len(train.durations) == 5338 and len(test.durations) == 1334
  assert train.durations["7UPGT"] == 23.21
  assert len(train.skipped) == 0 and len(test.skipped) == 0


def test_tacos_counts():
  splits = _kept(tacos.read_splits, "tacos")
  assert [s.protocol_summary("tan")["queries"] for s in splits] == [9790, 4436, 4001]


def test_activitynet_counts():
  train, val, test = _kept(activitynet.read_splits, "activitynet_captions")
  splits = (train, val, test)
  assert [s.protocol_summary("tan")["queries"] for s in splits] == [37417, 17505, 17031]
  assert [s.protocol_summary("lgi")["queries"] for s in splits] == [37421, 17505, 17031]
  assert [_notes(s, "lgi").get("kept: end past the duration") for s in splits] == [
      261, 134, 111]
  assert _notes(train, "lgi")["kept: start >= end"] == 4
  assert _notes(train, "tan")["dropped: start >= end"] == 4
  assert all(q.query_id.startswith("train.json:v_") for q in train.queries if q.flags & 4)

"""Hostile-but-realistic inputs to the converters: each is refused naming the file and the
line, key or video, or (with skip_malformed) dropped and counted; nothing is written
silently and nothing outside --output_dir is touched. Case ids (`case_...`) are the rows of
docs/reliability.md."""

import json
import math
import os
import re

import numpy as np
import pytest

from data_prep import charades_sta, convert, tacos
from data_prep.annotations import AnnotationError
from data_prep.features import FeatureError, FeatureSource
from tests.data_prep import fixtures

DURATIONS = {"AAAAA": 30.0, "BBBBB": 20.0}
GOOD = "AAAAA 0.0 6.9##a person opens the door."


def _charades(tmp_path, lines, durations=DURATIONS, skip_malformed=False):
  fixtures.write_charades(tmp_path, [GOOD] + list(lines), ["BBBBB 1.0 2.0##x."], durations)
  return charades_sta.read_splits(str(tmp_path), skip_malformed)


# --- point 3: silent bad data in the annotations ------------------------------------------

@pytest.mark.parametrize("case, line", [
    ("case_charades_interval_before_video", "AAAAA -9.0 -3.0##before the video."),
    ("case_charades_end_at_zero", "AAAAA -2.0 0.0##ends where the video starts."),
])
def test_interval_before_the_video_is_malformed(tmp_path, case, line):
  with pytest.raises(AnnotationError, match=r"charades_sta_train.txt:2: .*before the video"):
    _charades(tmp_path, [line])
  train, _ = _charades(tmp_path, [line], skip_malformed=True)
  assert [q.query_id for q in train.queries] == ["charades_sta_train.txt:1"]
  assert train.skipped.entries[0][:2] == ("malformed annotation", "charades_sta_train.txt:2")


@pytest.mark.parametrize("case, length", [
    ("case_charades_duration_nan", "nan"), ("case_charades_duration_zero", "0"),
    ("case_charades_duration_negative", "-4.5"), ("case_charades_duration_inf", "inf"),
])
def test_bad_charades_duration_names_the_csv_line(tmp_path, case, length):
  fixtures.write_charades(tmp_path, [GOOD, "BBBBB 1.0 2.0##x."], ["BBBBB 1.0 2.0##x."],
                          DURATIONS)
  path = tmp_path / "Charades_v1_test.csv"
  path.write_text(path.read_text().replace(",20.0", f",{length}"))
  with pytest.raises(AnnotationError, match=r"Charades_v1_test.csv:2: video 'BBBBB' has "
                     r"length .*not a positive finite number"):
    charades_sta.read_splits(str(tmp_path))
  train, test = charades_sta.read_splits(str(tmp_path), skip_malformed=True)
  assert [q.video_id for q in train.queries] == ["AAAAA"] and not test.queries
  assert train.skipped.entries == [(
      "malformed annotation", "charades_sta_train.txt:2",
      f"video 'BBBBB' has no usable duration (Charades_v1_test.csv:2: length {length!r}, "
      "not a positive finite number)")]


def test_charades_video_with_two_durations(tmp_path):  # case_charades_duplicate_duration
  fixtures.write_charades(tmp_path, [GOOD], ["BBBBB 1.0 2.0##x."], DURATIONS)
  with open(tmp_path / "Charades_v1_test.csv", "a") as f:
    f.write("AAAAA,S1,Kitchen,6,7,Yes,x,y,,,31.0\n")
  with pytest.raises(AnnotationError, match=r"Charades_v1_test.csv:3: video 'AAAAA' has "
                     r"length 31.0 but Charades_v1_train.csv:2 gave 30.0"):
    charades_sta.read_splits(str(tmp_path))
  # The same duration twice (a video in both csv files) is no contradiction.
  (tmp_path / "Charades_v1_test.csv").write_text(
      (tmp_path / "Charades_v1_test.csv").read_text().replace(",31.0", ",30.0"))
  assert len(charades_sta.read_splits(str(tmp_path))[0].queries) == 1


def _tacos(tmp_path, videos, skip_malformed=False, raw=None):
  for split in tacos.SPLITS:
    path = tmp_path / f"{split}.json"
    if raw is not None and split == "train":
      path.write_bytes(raw)
    else:
      fixtures.write_json(path, videos if split == "train" else {})
  return tacos.read_splits(str(tmp_path), skip_malformed)


def _entry(**change):
  entry = {"timestamps": [[0, 100], [100, 200]], "sentences": ["He cuts.", "He cooks."],
           "fps": 25.0, "num_frames": 500}
  entry.update(change)
  return entry


@pytest.mark.parametrize("case, change, detail", [
    ("case_tacos_fps_zero", dict(fps=0), "fps"),
    ("case_tacos_fps_nan", dict(fps=float("nan")), "fps"),
    ("case_tacos_num_frames_negative", dict(num_frames=-500), "duration"),
    ("case_tacos_num_frames_zero", dict(num_frames=0), "duration"),
    ("case_tacos_num_frames_inf", dict(num_frames=float("inf")), "duration"),
])
def test_bad_tacos_duration_names_the_video(tmp_path, case, change, detail):
  videos = {"s13.avi": _entry(**change), "s14.avi": _entry()}
  with pytest.raises(AnnotationError, match=rf"train.json:s13.avi: .*{detail}"):
    _tacos(tmp_path, videos)
  train = _tacos(tmp_path, videos, skip_malformed=True)[0]
  assert {q.video_id for q in train.queries} == {"s14.avi"}
  assert train.skipped.counts() == {"malformed annotation": 1}
  assert all(math.isfinite(d) and d > 0 for d in train.durations.values())


@pytest.mark.parametrize("case, sentence", [
    ("case_tacos_sentence_null", None), ("case_tacos_sentence_object", {"text": "x"}),
    ("case_tacos_sentence_number", 7),
])
def test_tacos_sentence_that_is_not_text(tmp_path, case, sentence):
  videos = {"s13.avi": _entry(sentences=["He cuts.", sentence])}
  with pytest.raises(AnnotationError, match=r"train.json:s13.avi:1: sentence .* is not text"):
    _tacos(tmp_path, videos)
  train = _tacos(tmp_path, videos, skip_malformed=True)[0]
  assert [q.sentence for q in train.queries] == ["He cuts."]
  assert train.skipped.entries[0][:2] == ("malformed annotation", "train.json:s13.avi:1")


def test_tacos_video_listed_twice(tmp_path):  # case_tacos_duplicate_video
  raw = (b'{"s13.avi": ' + json.dumps(_entry()).encode() + b', "s13.avi": '
         + json.dumps(_entry(num_frames=900)).encode() + b', "s14.avi": '
         + json.dumps(_entry()).encode() + b"}")
  with pytest.raises(AnnotationError, match=r"train.json:s13.avi: listed 2 times"):
    _tacos(tmp_path, {}, raw=raw)
  train = _tacos(tmp_path, {}, skip_malformed=True, raw=raw)[0]
  assert {q.video_id for q in train.queries} == {"s14.avi"}
  assert train.skipped.counts() == {"malformed annotation": 1}


def test_float16_overflow_is_refused(tmp_path):  # case_float16_overflow
  fixtures.write_charades(tmp_path / "ann", [GOOD], ["BBBBB 1.0 2.0##x."], DURATIONS)
  arrays = fixtures.random_features(DURATIONS)
  arrays["BBBBB"][1, 2] = 1e6
  features = fixtures.write_npy_dir(tmp_path / "f", arrays)
  with pytest.raises(FeatureError, match=r"video BBBBB: .*1e\+06.*float16"):
    convert.convert("charades_sta", charades_sta.read_splits(str(tmp_path / "ann")),
                    str(features), str(tmp_path / "out"),
                    convert.Options(feature_dtype="float16"))
  assert not (tmp_path / "out" / "meta.json").exists()


# --- point 4: failures that name their place ------------------------------------------------

def test_non_utf8_charades_line_is_named(tmp_path):  # case_charades_non_utf8
  fixtures.write_charades(tmp_path, [GOOD], ["BBBBB 1.0 2.0##x."], DURATIONS)
  path = tmp_path / "charades_sta_train.txt"
  path.write_bytes(path.read_bytes() + b"AAAAA 1.0 2.0##caf\xe9 au lait.\n")
  with pytest.raises(AnnotationError, match=r"charades_sta_train.txt:2: not UTF-8 text"):
    charades_sta.read_splits(str(tmp_path))
  train, _ = charades_sta.read_splits(str(tmp_path), skip_malformed=True)
  assert len(train.queries) == 1
  assert train.skipped.entries[0][:2] == ("malformed annotation", "charades_sta_train.txt:2")


def test_non_utf8_json_and_csv_are_named(tmp_path):  # case_json_non_utf8, case_csv_non_utf8
  raw = b'{"s13.avi": {"timestamps": [[0, 1]],\n "sentences": ["caf\xe9"], "fps": 1}}'
  with pytest.raises(AnnotationError, match=r"train.json:2: not UTF-8 text"):
    _tacos(tmp_path, {}, skip_malformed=True, raw=raw)
  fixtures.write_charades(tmp_path, [GOOD], [], DURATIONS)
  csv = tmp_path / "Charades_v1_train.csv"
  csv.write_bytes(csv.read_bytes() + b"CCCCC,S1,K\xff,6,7,Yes,x,y,,,3.0\n")
  with pytest.raises(AnnotationError, match=r"Charades_v1_train.csv:3: not UTF-8 text"):
    charades_sta.read_splits(str(tmp_path))


@pytest.mark.parametrize("case, content, message", [
    ("case_npy_truncated", None, "truncated"),
    ("case_npy_garbage", b"this is not an array at all\n", "not a .npy file"),
    ("case_npy_pickled", "object", "holds Python objects"),
])
def test_unreadable_npy_names_the_file(tmp_path, case, content, message):
  directory = fixtures.write_npy_dir(tmp_path / "f", {"good": np.ones((4, 3), np.float32)})
  path = os.path.join(directory, "bad.npy")
  if content is None:
    np.save(path, np.ones((40, 3), np.float32))
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) - 100)
  elif content == "object":
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
  else:
    with open(path, "wb") as f:
      f.write(content)
  with FeatureSource(str(directory)) as source:
    source.load("good")
    with pytest.raises(FeatureError, match=message) as info:
      source.load("bad")
  assert f"{path}" in str(info.value) and "video bad" in str(info.value)
  assert "pickled" not in str(info.value)


# --- point 2: ids used as file names stay in their folder -----------------------------------

@pytest.mark.parametrize("case, video_id", [
    ("case_video_id_parent", "../outside"), ("case_video_id_absolute", "/tmp/outside"),
    ("case_video_id_nested", "sub/../../outside"),
])
def test_video_id_cannot_leave_the_features_folder(tmp_path, case, video_id):
  directory = fixtures.write_npy_dir(tmp_path / "f", {"good": np.ones((4, 3), np.float32)})
  np.save(tmp_path / "outside.npy", np.ones((4, 3), np.float32))
  with FeatureSource(str(directory)) as source:
    with pytest.raises(FeatureError, match=rf"video id {video_id!r} .*outside"):
      source.load(video_id)
    with pytest.raises(FeatureError, match=rf"video id {video_id!r}"):
      source.missing([video_id])


def test_symlink_out_of_the_features_folder_is_refused(tmp_path):  # case_video_id_symlink
  directory = fixtures.write_npy_dir(tmp_path / "f", {"good": np.ones((4, 3), np.float32)})
  np.save(tmp_path / "secret.npy", np.ones((4, 3), np.float32))
  os.symlink(tmp_path / "secret.npy", os.path.join(directory, "link.npy"))
  with FeatureSource(str(directory)) as source:
    with pytest.raises(FeatureError, match=r"video id 'link' .*outside"):
      source.load("link")


# --- point 1: a re-run removes only what the converter wrote ---------------------------------

@pytest.fixture
def converted(tmp_path):
  fixtures.write_charades(tmp_path / "ann", [GOOD], ["BBBBB 1.0 2.0##x."], DURATIONS)
  features = fixtures.write_npy_dir(tmp_path / "f", fixtures.random_features(DURATIONS))
  out = tmp_path / "out"

  def run():
    return convert.convert("charades_sta", charades_sta.read_splits(str(tmp_path / "ann")),
                           str(features), str(out), convert.Options(num_shards=1))
  run()
  return out, run


@pytest.mark.parametrize("case, listed", [
    ("case_meta_lists_parent", "../victim.txt"),
    ("case_meta_lists_absolute", "ABSOLUTE"),
    ("case_meta_lists_foreign_name", "notes.txt"),
    ("case_meta_lists_subfolder", "sub/train-00000-of-00001.tfrecord"),
])
def test_rerun_never_deletes_what_it_did_not_write(converted, tmp_path, case, listed):
  out, run = converted
  victim = tmp_path / "victim.txt"
  victim.write_text("precious")
  (out / "notes.txt").write_text("mine")
  if listed == "ABSOLUTE":
    listed = str(victim)
  meta = json.loads((out / "meta.json").read_text())
  meta["splits"]["train"]["files"].append(listed)
  (out / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(convert.ConversionError, match=rf"meta.json lists {re.escape(repr(listed))}"):
    run()
  assert victim.read_text() == "precious" and (out / "notes.txt").read_text() == "mine"
  assert json.loads((out / "meta.json").read_text()) == meta  # refused before writing


def test_stale_temporary_folders_are_removed(converted):  # case_convert_stale_tmp
  out, run = converted
  (out / ".tmp-abc123").mkdir()
  (out / ".tmp-abc123" / "train-00000-of-00001.tfrecord").write_bytes(b"half")
  (out / ".tmpkeep").mkdir()  # not a name the converter gives
  run()
  assert not (out / ".tmp-abc123").exists() and (out / ".tmpkeep").exists()

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_prep import activitynet, charades_sta, convert
from data_prep.features import FeatureError
from sscs_tf.data import text
from sscs_tf.data import example
from tests.data_prep import fixtures
from tests.testing import REPO_ROOT

DURATIONS = {"AAAAA": 30.0, "BBBBB": 20.0, "CCCCC": 10.0, "DDDDD": 12.0}
TRAIN = ["AAAAA 0.0 6.9##A person opens the door.",
         "AAAAA 7.0 12.0##person's closing the DOOR.",
         "BBBBB 1.0 25.0##a person holds a cup.",      # end clipped to 20
         "BBBBB 5.0 4.0##reversed.",                    # dropped by 2D-TAN's protocol
         "BBBBB 2.0 3.0##...",                          # no word: dropped
         ]
TEST = ["CCCCC 1.0 2.0##the person eats food.", "DDDDD 0.5 3.0##a person sneezes."]


def _glove(path):
  words = ["a", "person", "opens", "the", "door", "'s", "closing", "eats", "food"]
  rows = [f"{w} " + " ".join(str(i + 0.5 * k) for k in range(4)) for i, w in enumerate(words)]
  path.write_text("\n".join(rows) + "\n")
  return str(path)


def _read_records(out_dir, split):
  meta = json.load(open(os.path.join(out_dir, "meta.json")))
  files = [os.path.join(out_dir, f) for f in meta["splits"][split]["files"]]
  parsed = [example.parse_video(r, meta["feature_dim"], meta["feature_dtype"])
            for r in tf.data.TFRecordDataset(files)]
  return meta, {p["video_id"].numpy().decode(): p for p in parsed}


@pytest.fixture
def charades(tmp_path):
  annotation_dir = fixtures.write_charades(tmp_path / "ann", TRAIN, TEST, DURATIONS)
  arrays = fixtures.random_features(DURATIONS)
  features = fixtures.write_npy_dir(tmp_path / "i3d", arrays)
  return str(annotation_dir), str(features), arrays


def _convert(annotation_dir, features, out_dir, **options):
  return convert.convert("charades_sta", charades_sta.read_splits(annotation_dir), features,
                         str(out_dir), convert.Options(**options))


def test_charades_end_to_end_with_glove(charades, tmp_path):
  annotation_dir, features, arrays = charades
  out = tmp_path / "out"
  meta = _convert(annotation_dir, features, out, num_shards=2,
                  glove=_glove(tmp_path / "g.txt"))
  assert meta["dataset"] == "charades_sta" and meta["feature_dim"] == 6
  # The records hold every query with a word; each protocol reads its own.
  train = meta["splits"]["train"]
  assert meta["format_version"] == 2
  assert train["queries"] == 4 and train["videos"] == 2
  assert train["skipped"] == {"empty sentence": 1}
  assert train["protocols"] == {
      "tan": {"queries": 3, "videos": 2, "notes": {"dropped: start >= end": 1,
                                                    "end clipped to the duration": 1}},
      "lgi": {"queries": 4, "videos": 2, "notes": {"kept: end past the duration": 1,
                                                    "kept: start >= end": 1}}}
  assert meta["splits"]["test"]["queries"] == 2
  assert meta == json.load(open(out / "meta.json"))
  vocab = text.Vocabulary.load(str(out / "vocab.txt"))
  assert meta["vocab_size"] == len(vocab)
  # Training words, then test words that have a GloVe vector ("eats", "food"), not "sneezes".
  assert {"eats", "food"} <= set(vocab.tokens) and "sneezes" not in vocab.tokens
  embeddings = np.load(out / "embeddings.npy")
  assert embeddings.shape == (len(vocab), 4)
  np.testing.assert_array_equal(embeddings[vocab.tokens.index("door")], [4, 4.5, 5, 5.5])
  np.testing.assert_array_equal(embeddings[:3], 0)  # reserved tokens
  assert meta["glove"]["vocabulary_words_with_vector"] == 9
  _, videos = _read_records(str(out), "train")
  np.testing.assert_array_equal(videos["AAAAA"]["features"].numpy(), arrays["AAAAA"])
  b = videos["BBBBB"]
  assert b["duration"].numpy() == 20.0
  assert b["ends"].numpy().tolist() == [25.0, 4.0]  # as annotated
  assert b["protocol_flags"].numpy().tolist() == [2, 4]
  # The vocabulary holds the words of the queries 2D-TAN reads, as before protocols existed.
  assert "reversed" not in vocab.tokens and b["word_ids"].to_list()[1] == [text.UNK_ID]
  assert b["query_ids"].numpy().tolist() == [b"charades_sta_train.txt:3",
                                             b"charades_sta_train.txt:4"]
  a = videos["AAAAA"]
  expected = [vocab.encode(t) for t in text.tokenize_py(
      ["A person opens the door.", "person's closing the DOOR."])]
  assert a["word_ids"].to_list() == expected
  assert expected[1][:2] == [vocab.tokens.index("person"), vocab.tokens.index("'s")]
  skipped = (out / "skipped.tsv").read_text().splitlines()
  assert skipped[1:] == ["train\tall\tempty sentence\tcharades_sta_train.txt:5\t'...'",
                         "train\ttan\tstart >= end\tcharades_sta_train.txt:4\t5.0 4.0 of 20.0"]


def test_missing_features_listed_or_skipped(charades, tmp_path):
  annotation_dir, features, _ = charades
  os.remove(os.path.join(features, "DDDDD.npy"))
  os.remove(os.path.join(features, "BBBBB.npy"))
  with pytest.raises(FeatureError, match=r"no features for 2 videos: BBBBB, DDDDD"):
    _convert(annotation_dir, features, tmp_path / "out")
  assert not (tmp_path / "out" / "meta.json").exists()
  meta = _convert(annotation_dir, features, tmp_path / "out", allow_missing_features=True)
  assert meta["splits"]["train"]["skipped"]["no features"] == 2
  assert meta["splits"]["test"] == dict(meta["splits"]["test"], queries=1, videos=1,
                                        skipped={"no features": 1})


def test_nan_features_fail_and_keep_the_previous_output(charades, tmp_path):
  annotation_dir, features, arrays = charades
  out = tmp_path / "out"
  _convert(annotation_dir, features, out, num_shards=3)
  before = {p.name: p.read_bytes() for p in out.iterdir()}
  bad = arrays["CCCCC"].copy()
  bad[2, 3] = np.nan
  np.save(os.path.join(features, "CCCCC.npy"), bad)
  with pytest.raises(FeatureError, match=r"video CCCCC: 1 NaN/Inf values, in rows \[2\]"):
    _convert(annotation_dir, features, out, num_shards=1)
  assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_rerun_replaces_shards_and_float16(charades, tmp_path):
  annotation_dir, features, arrays = charades
  out = tmp_path / "out"
  _convert(annotation_dir, features, out, num_shards=3)
  assert len(list(out.glob("train-*"))) == 2  # at most one shard per video
  meta = _convert(annotation_dir, features, out, num_shards=1, feature_dtype="float16")
  assert sorted(p.name for p in out.iterdir()) == [
      "meta.json", "skipped.tsv", "test-00000-of-00001.tfrecord",
      "train-00000-of-00001.tfrecord", "vocab.txt"]
  assert meta["feature_dtype"] == "float16"
  _, videos = _read_records(str(out), "test")
  np.testing.assert_allclose(videos["CCCCC"]["features"].numpy(), arrays["CCCCC"],
                             rtol=1e-3, atol=1e-3)


def test_activitynet_group_layout(tmp_path):
  entry = {"duration": 50.0, "timestamps": [[1.0, 9.0], [10.0, 60.0]],
           "sentences": ["A man runs.", "He stops."]}
  for _, name in activitynet.SPLITS:
    fixtures.write_json(tmp_path / name, {"v_abc": entry, "v_def": entry})
  arrays = fixtures.random_features(["v_abc", "v_def"], dim=500)
  features = fixtures.write_hdf5(tmp_path / "c3d.hdf5", arrays, group_key="c3d_features")
  meta = convert.convert("activitynet_captions", activitynet.read_splits(str(tmp_path)),
                         str(features), str(tmp_path / "out"),
                         convert.Options(feature_key="c3d_features"))
  assert meta["feature_dim"] == 500
  assert [meta["splits"][s]["queries"] for s in ("train", "val", "test")] == [4, 4, 4]
  assert meta["splits"]["val"]["protocols"]["tan"]["notes"] == {
      "end clipped to the duration": 2}


def test_command_line(charades, tmp_path):
  annotation_dir, features, _ = charades
  out = tmp_path / "cli_out"
  result = subprocess.run(
      [sys.executable, "-m", "data_prep.charades_sta", f"--annotation_dir={annotation_dir}",
       f"--features={features}", f"--output_dir={out}", "--num_shards=2",
       "--feature_dtype=float16", "--val_fraction=0"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "train: 4 queries over 2 videos written; skipped: empty sentence: 1" in result.stderr
  assert ("train, tan protocol: 3 queries over 2 videos; dropped: start >= end: 1, end clipped "
          "to the duration: 1") in result.stderr
  assert json.load(open(out / "meta.json"))["feature_dtype"] == "float16"


def test_extractor_attributes_are_copied_into_meta(charades, tmp_path):
  import h5py  # pylint: disable=import-outside-toplevel
  annotation_dir, _, arrays = charades
  features = fixtures.write_hdf5(tmp_path / "f.h5", arrays)
  meta = _convert(annotation_dir, str(features), tmp_path / "plain")
  assert meta["extractor"] is None  # not written by sscs-extract: unknown
  attrs = {"extractor": "i3d_rgb", "preset": "stack64", "fps": 25,
           "weights_kind": "rgb_scratch", "weights_sha256": "0f" * 32}
  with h5py.File(features, "a") as f:
    f.attrs.update(attrs)
  _convert(annotation_dir, str(features), tmp_path / "out")
  meta = json.load(open(tmp_path / "out" / "meta.json"))
  assert meta["extractor"] == attrs


def test_charades_validation_split_carved_by_video(charades, tmp_path):
  annotation_dir, features, _ = charades
  out = tmp_path / "carved"
  result = subprocess.run(
      [sys.executable, "-m", "data_prep.charades_sta", f"--annotation_dir={annotation_dir}",
       f"--features={features}", f"--output_dir={out}", "--val_fraction=0.5",
       "--val_seed=3"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  meta = json.load(open(out / "meta.json"))
  train, val = meta["splits"]["train"], meta["splits"]["val"]
  # Two training videos: one goes to val with all its queries (4 in the records, the
  # reversed one included, which only 2D-TAN's protocol drops).
  assert (train["videos"], val["videos"]) == (1, 1)
  assert train["queries"] + val["queries"] == 4
  assert sum(s["protocols"]["tan"]["queries"] for s in (train, val)) == 3
  assert sum(s["protocols"]["tan"]["notes"].get("dropped: start >= end", 0)
             for s in (train, val)) == 1
  assert val["origin"] == dict(carved_from="train", fraction=0.5, seed=3, videos=1)
  # The converter's drops (an empty sentence, of video B) go with the split the query fell
  # in.
  assert train["skipped"].get("empty sentence", 0) + val["skipped"].get("empty sentence",
                                                                         0) == 1
  _, train_videos = _read_records(out, "train")
  _, val_videos = _read_records(out, "val")
  assert not set(train_videos) & set(val_videos)

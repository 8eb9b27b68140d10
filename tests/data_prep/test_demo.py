import csv
import filecmp
import json
import os

import h5py
import numpy as np
import pytest

from data_prep import demo

SIZES = dict(num_train_videos=40, num_test_videos=12, feature_dim=128)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  out = tmp_path_factory.mktemp("demo")
  demo.build(str(out), seed=3, **SIZES)
  return out


def _lines(path):
  rows = []
  for line in open(path):
    head, sentence = line.rstrip("\n").split("##")
    vid, start, end = head.split()
    rows.append((vid, float(start), float(end), sentence))
  return rows


def test_deterministic_for_a_seed(built, tmp_path):
  demo.write_raw(str(tmp_path / "again"), seed=3, **SIZES)
  demo.write_raw(str(tmp_path / "other"), seed=4, **SIZES)
  for name in ("charades_sta_train.txt", "Charades_v1_test.csv", "glove.demo.300d.txt"):
    assert filecmp.cmp(built / "raw" / name, tmp_path / "again" / name, shallow=False)
    assert not filecmp.cmp(built / "raw" / name, tmp_path / "other" / name, shallow=False)
  with h5py.File(built / "raw" / "features.hdf5") as a, \
       h5py.File(tmp_path / "again" / "features.hdf5") as b:
    assert sorted(a) == sorted(b)
    for vid in a:
      np.testing.assert_array_equal(a[vid][()], b[vid][()])


def test_structure_entities_everywhere_actions_inside_gt(built):
  world = demo.World(np.random.default_rng(3), SIZES["feature_dim"])
  durations, scene = {}, {}
  for split in ("train", "test"):
    for row in csv.DictReader(open(built / "raw" / f"Charades_v1_{split}.csv")):
      durations[row["id"]] = float(row["length"])
      scene[row["id"]] = row["objects"].split(";")
  inside_score, outside_score, checked = [], [], 0
  with h5py.File(built / "raw" / "features.hdf5") as f:
    for vid, start, end, sentence in _lines(built / "raw" / "charades_sta_train.txt"):
      if start >= end or end > durations[vid]:
        continue  # the two release quirks, checked by the converter test
      feats = f[vid][()]
      # Entities: the person and every scene object show throughout the video; objects
      # that are not in the scene do not.
      for direction in [world.person] + [world.objects[o] for o in scene[vid]]:
        assert (feats @ direction).mean() > 0.4
      for absent in set(demo.OBJECTS) - set(scene[vid]):
        assert abs((feats @ world.objects[absent]).mean()) < 0.2
      # The sentence names its action and one of the scene's objects.
      verb = next(v for v, (third, gerund, _) in demo.VERBS.items()
                  if f" {third} " in sentence or f" {gerund} " in sentence)
      obj = next(o for o in scene[vid] if sentence.split()[-1].rstrip(".") == o
                 or f" {o} " in sentence or sentence.endswith(f" {o}."))
      assert obj in demo.VERBS[verb][2]
      centers = (np.arange(len(feats)) + 0.5) * durations[vid] / len(feats)
      inside = (centers >= start) & (centers <= end)
      projection = feats @ world.interactions[(verb, obj)]
      inside_score.append(projection[inside].mean())
      outside_score.append(projection[~inside].mean())
      checked += 1
  assert checked > 80
  # The action's own direction is present inside the interval and absent outside it.
  assert np.mean(inside_score) > 0.6 and abs(np.mean(outside_score)) < 0.15


def test_actions_and_objects_shared_across_videos(built):
  videos_per_sentence_verb = {}
  for vid, _, _, sentence in _lines(built / "raw" / "charades_sta_train.txt"):
    for verb, (third, gerund, _) in demo.VERBS.items():
      if f" {third} " in sentence or f" {gerund} " in sentence:
        videos_per_sentence_verb.setdefault(verb, set()).add(vid)
  assert len(videos_per_sentence_verb) >= 8
  assert sorted(len(v) for v in videos_per_sentence_verb.values())[-5] >= 4


def test_converted_by_the_charades_converter(built):
  meta = json.load(open(built / "tfrecords" / "meta.json"))
  assert meta["dataset"] == "charades_sta" and meta["feature_dim"] == 128
  # 10% of the 40 training videos are carved out as `val` (data_prep.charades_sta).
  splits = meta["splits"]
  assert (splits["train"]["videos"], splits["val"]["videos"], splits["test"]["videos"]) == (
      36, 4, 12)
  assert splits["val"]["origin"]["fraction"] == 0.1
  # The reversed line is kept in the records; 2D-TAN's protocol drops it, LGI's keeps it.
  assert splits["train"]["skipped"] == {} and splits["val"]["skipped"] == {}
  tan = [splits[s]["protocols"]["tan"] for s in ("train", "val")]
  lgi = [splits[s]["protocols"]["lgi"] for s in ("train", "val")]
  assert sum(t["notes"].get("dropped: start >= end", 0) for t in tan) == 1
  assert sum(p["notes"].get("kept: start >= end", 0) for p in lgi) == 1
  assert (sum(t["queries"] for t in tan) + 1 == sum(p["queries"] for p in lgi)
          == splits["train"]["queries"] + splits["val"]["queries"])
  assert sum(t["notes"].get("end clipped to the duration", 0) for t in tan) >= 1
  assert meta["glove"]["train_token_coverage"] == 1.0
  assert os.path.exists(built / "tfrecords" / "embeddings.npy")


def test_mutual_exclusion_setting_tells_actions_apart_only_by_their_object(tmp_path):
  demo.write_raw(str(tmp_path), seed=3, setting="mutual_exclusion", **SIZES)
  world = demo.World(np.random.default_rng(3), SIZES["feature_dim"])
  durations = {row["id"]: float(row["length"])
               for row in csv.DictReader(open(tmp_path / "Charades_v1_train.csv"))}
  by_video = {}
  for vid, start, end, sentence in _lines(tmp_path / "charades_sta_train.txt"):
    if start < end <= durations[vid]:  # not the two release quirks
      by_video.setdefault(vid, []).append((start, end, sentence))
  inside_object, outside_object, interaction, checked = [], [], [], 0
  with h5py.File(tmp_path / "features.hdf5") as f:
    for vid, queries in by_video.items():
      verbs = {v for v, (third, gerund, _) in demo.VERBS.items()
               for _, _, sentence in queries if f" {third} " in sentence
               or f" {gerund} " in sentence}
      assert len(verbs) == 1, queries  # every action of a video has the same verb ...
      verb = verbs.pop()
      feats = f[vid][()]
      centers = (np.arange(len(feats)) + 0.5) * durations[vid] / len(feats)
      for start, end, sentence in queries:
        obj = sentence.rstrip(".").replace(" in the room", "").split()[-1]
        inside = (centers >= start) & (centers <= end)
        # ... its object shows everywhere, more strongly inside its action ...
        inside_object.append((feats[inside] @ world.objects[obj]).mean())
        outside_object.append((feats[~inside] @ world.objects[obj]).mean())
        # ... and no verb-object direction comes for free.
        interaction.append((feats @ world.interactions[(verb, obj)]).mean())
        checked += 1
  assert checked > 80
  assert np.mean(outside_object) > 0.4
  assert np.mean(inside_object) > np.mean(outside_object) + 0.6
  assert abs(np.mean(interaction)) < 0.1

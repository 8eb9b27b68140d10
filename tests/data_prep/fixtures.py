"""Tiny datasets written in the real file formats."""

import json
import os

import h5py
import numpy as np

CSV_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def write_charades(directory, train_lines, test_lines, durations):
  """charades_sta_{train,test}.txt and Charades_v1_{train,test}.csv (all durations in both)."""
  os.makedirs(directory, exist_ok=True)
  for split, lines in (("train", train_lines), ("test", test_lines)):
    with open(os.path.join(directory, f"charades_sta_{split}.txt"), "w") as f:
      f.write("".join(line + "\n" for line in lines))
  rows = "".join(f'{vid},S1,Kitchen,6,7,Yes,"a script, with a comma",cup;door,,,{d}\n'
                 for vid, d in durations.items())
  half = len(durations) // 2
  items = list(rows.splitlines(keepends=True))
  with open(os.path.join(directory, "Charades_v1_train.csv"), "w") as f:
    f.write(CSV_HEADER + "".join(items[:half]))
  with open(os.path.join(directory, "Charades_v1_test.csv"), "w") as f:
    f.write(CSV_HEADER + "".join(items[half:]))
  return directory


def write_hdf5(path, arrays, group_key=""):
  """One dataset per video, or (group_key) a group per video holding `group_key`."""
  with h5py.File(path, "w") as f:
    for vid, array in arrays.items():
      if group_key:
        f.create_group(vid).create_dataset(group_key, data=array)
      else:
        f.create_dataset(vid, data=array)
  return path


def write_npy_dir(directory, arrays):
  os.makedirs(directory, exist_ok=True)
  for vid, array in arrays.items():
    np.save(os.path.join(directory, vid + ".npy"), array)
  return directory


def write_json(path, obj):
  with open(path, "w") as f:
    json.dump(obj, f)
  return path


def random_features(video_ids, dim=6, seed=0, lengths=None):
  rng = np.random.default_rng(seed)
  lengths = lengths or {}
  return {v: rng.normal(size=(lengths.get(v, 5 + i), dim)).astype(np.float32)
          for i, v in enumerate(video_ids)}

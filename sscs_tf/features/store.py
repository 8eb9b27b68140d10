"""The HDF5 file `sscs-extract` writes, and how a killed run resumes.

Layout (read unchanged by data_prep/features.py): one float32 dataset `[N, 1024]` per video
id, named from the video file's stem, with attributes `row_times` (float64 `[N, 2]`: start
and end second of each row), `duration` (seconds) and `source` (the file name); the root's
attributes describe the extractor (`extractor`, `preset`, `fps`, `weights_kind`,
`weights_sha256`, `precision`, ...).

Crash safety: each video's features are first written atomically to their own file in
`{output}.parts/`; at the end of a run they are merged into a copy of the output, which then
replaces it (a rename). A kill at any moment leaves the previous output intact and every
finished video in the parts folder, and the next run merges them and goes on with the rest.
"""

import os
import shutil

import h5py
import numpy as np

from sscs_tf.core import fileio

# Attributes that must agree for features to be of one kind (one feature space and layout).
IDENTITY_KEYS = ("extractor", "preset", "weights_kind", "weights_sha256")
PARTS_ATTRS = "extractor.json"


class StoreError(ValueError):
  """An output that cannot be resumed or written; the message names the file."""


def read_attrs(path: str) -> dict:
  """The extractor attributes of an HDF5 features file ({} when it has none)."""
  with h5py.File(path, "r") as f:
    return {k: _plain(v) for k, v in f.attrs.items()}


def _plain(value):
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.generic):
    return value.item()
  return value


def identity(attrs: dict) -> dict:
  return {k: attrs.get(k) for k in IDENTITY_KEYS}


def mismatch(expected: dict, found: dict) -> str:
  """'' when both describe the same kind of features, else what differs."""
  diffs = [f"{k} {found.get(k)!r} (wanted {expected.get(k)!r})" for k in IDENTITY_KEYS
           if expected.get(k) != found.get(k)]
  return ", ".join(diffs)


class FeatureStore:
  """Video features going into `output`; see the module docstring.

  Args:
    output: the HDF5 file to create or complete.
    attrs: the extractor's attributes; an existing output or parts folder must agree.
  """

  def __init__(self, output: str, attrs: dict):
    self.output, self.attrs = output, dict(attrs)
    self.parts_dir = output + ".parts"
    self._check(output, lambda: read_attrs(output))
    self._check(os.path.join(self.parts_dir, PARTS_ATTRS),
                lambda: fileio.read_json(os.path.join(self.parts_dir, PARTS_ATTRS)))

  def _check(self, path, read):
    if not os.path.exists(path):
      return
    try:
      found = read()
    except (OSError, ValueError) as e:
      raise StoreError(f"{path} exists but cannot be read ({e}); move it away") from None
    diff = mismatch(self.attrs, found)
    if diff:
      raise StoreError(f"{path} holds features of another kind: {diff}; write to another "
                       "file")

  def done_ids(self) -> set:
    ids = set()
    if os.path.exists(self.output):
      with h5py.File(self.output, "r") as f:
        ids.update(f.keys())
    ids.update(self._part_ids())
    return ids

  def _part_ids(self):
    if not os.path.isdir(self.parts_dir):
      return []
    return sorted(n[:-len(".npz")] for n in os.listdir(self.parts_dir)
                  if n.endswith(".npz") and not n.startswith("."))

  def add(self, video_id: str, features, times, duration: float, source: str) -> None:
    """Commits one video's features (atomically) to the parts folder."""
    attrs_path = os.path.join(self.parts_dir, PARTS_ATTRS)
    if not os.path.exists(attrs_path):
      os.makedirs(self.parts_dir, exist_ok=True)
      fileio.atomic_write_json(attrs_path, self.attrs)
    with fileio.atomic_path(os.path.join(self.parts_dir, video_id + ".npz")) as tmp:
      with open(tmp, "wb") as f:
        np.savez(f, features=np.asarray(features, np.float32),
                 times=np.asarray(times, np.float64), duration=np.float64(duration),
                 source=np.str_(source))

  def merge(self) -> int:
    """Moves the parts into the output (a copy, then a rename); returns how many."""
    ids = self._part_ids()
    if not ids and os.path.exists(self.output):
      return 0
    with fileio.atomic_path(self.output) as tmp:
      if os.path.exists(self.output):
        shutil.copyfile(self.output, tmp)
      with h5py.File(tmp, "a") as f:
        f.attrs.update(self.attrs)
        for video_id in ids:
          if video_id not in f:
            self._write_video(f, video_id)
    self._remove_parts(ids)
    return len(ids)

  def _remove_parts(self, ids):
    """Deletes the parts folder's files this tool wrote: the merged parts, its attributes and
    temporary files left by a killed write; the folder goes once it is empty."""
    if not os.path.isdir(self.parts_dir):
      return
    ours = {i + ".npz" for i in ids} | {PARTS_ATTRS}
    for name in os.listdir(self.parts_dir):
      if name in ours or (name.startswith(".") and name.endswith(".tmp")):
        os.remove(os.path.join(self.parts_dir, name))
    if not os.listdir(self.parts_dir):
      os.rmdir(self.parts_dir)

  def _write_video(self, f, video_id):
    with np.load(os.path.join(self.parts_dir, video_id + ".npz"), allow_pickle=False) as part:
      dataset = f.create_dataset(video_id, data=part["features"])
      dataset.attrs["row_times"] = part["times"]
      dataset.attrs["duration"] = float(part["duration"])
      dataset.attrs["source"] = str(part["source"])

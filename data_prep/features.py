"""Pre-extracted clip features: an HDF5 file or a directory of `{video_id}.npy`.

Layouts read (see docs/data.md):
  * HDF5, one dataset per video id (`vgg_rgb_features.hdf5`, `tall_c3d_features.hdf5`);
  * HDF5, one group per video id holding a named dataset (ActivityNet's
    `f[vid]["c3d_features"]`; pass its name as `dataset_key`);
  * a directory of `{video_id}.npy` files (I3D features).
Each video is `[T, D]` or `[T, 1, 1, D]` (I3D); it is returned as float32 `[T, D]`.
"""

import os

import h5py
import numpy as np

from sscs_tf.core import fileio


class FeatureError(ValueError):
  """Features that cannot be used; the message names the file and the video."""


class FeatureSource:
  """Reads and validates one video's features at a time.

  Args:
    path: an HDF5 file or a directory of `.npy` files.
    dataset_key: for HDF5 files holding a group per video, the dataset inside the group;
      empty when the group holds a single dataset or the file has a dataset per video.
  """

  def __init__(self, path: str, dataset_key: str = ""):
    if not os.path.exists(path):
      raise FeatureError(f"Features path {path} does not exist.")
    self.path = path
    self.dataset_key = dataset_key
    self._h5 = None if os.path.isdir(path) else _open_hdf5(path)
    self.feature_dim = None  # set by the first video loaded; every other must agree
    self.extractor = _extractor_attrs(self._h5)

  def close(self) -> None:
    if self._h5 is not None:
      self._h5.close()
      self._h5 = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def __contains__(self, video_id: str) -> bool:
    if self._h5 is not None:
      return video_id in self._h5
    return os.path.isfile(self._npy_path(video_id))

  def missing(self, video_ids) -> list[str]:
    return sorted(v for v in set(video_ids) if v not in self)

  def _npy_path(self, video_id: str) -> str:
    path = fileio.contained_path(self.path, video_id + ".npy")
    if path is None:
      raise FeatureError(f"{self.path}: video id {video_id!r} names a file outside the "
                         "features folder; ids are file names inside it")
    return path

  def _read(self, video_id: str) -> np.ndarray:
    if self._h5 is None:
      try:
        return fileio.load_npy(self._npy_path(video_id))
      except ValueError as e:
        raise FeatureError(f"{e} (video {video_id})") from None
    node = self._h5[video_id]
    if isinstance(node, h5py.Group):
      keys = list(node.keys())
      key = self.dataset_key or (keys[0] if len(keys) == 1 else None)
      if key is None or key not in node:
        raise FeatureError(
            f"{self.path}: video {video_id} is a group holding {keys}; name the dataset to "
            "read with --feature_key")
      node = node[key]
    return node[()]

  def load(self, video_id: str) -> np.ndarray:
    """The video's features as float32 `[T, D]`, checked for shape, width and finiteness."""
    where = f"{self.path}: video {video_id}"
    if video_id not in self:
      raise FeatureError(f"{where}: no features")
    array = np.asarray(self._read(video_id))
    if array.ndim == 4 and array.shape[1:3] == (1, 1):
      array = array.reshape(array.shape[0], array.shape[3])
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
      raise FeatureError(f"{where}: features have shape {array.shape}; expected [T, D] or "
                         "[T, 1, 1, D] with T, D > 0")
    if not np.issubdtype(array.dtype, np.number):
      raise FeatureError(f"{where}: features have dtype {array.dtype}, not numeric")
    array = array.astype(np.float32, copy=False)
    if self.feature_dim is None:
      self.feature_dim = array.shape[1]
    elif array.shape[1] != self.feature_dim:
      raise FeatureError(f"{where}: feature width {array.shape[1]} differs from the "
                         f"{self.feature_dim} of the videos read before it")
    bad = ~np.isfinite(array)
    if bad.any():
      rows = np.unique(np.nonzero(bad)[0])
      raise FeatureError(f"{where}: {int(bad.sum())} NaN/Inf values, in rows "
                         f"{rows[:5].tolist()}{' ...' if len(rows) > 5 else ''}")
    return array


def _extractor_attrs(h5):
  """The root attributes sscs-extract writes (preset, weights, fps, ...; docs/video.md), as
  JSON-ready values; None for files made by other tools."""
  if h5 is None or "extractor" not in h5.attrs:
    return None
  attrs = {}
  for key, value in h5.attrs.items():
    if isinstance(value, bytes):
      value = value.decode("utf-8")
    elif isinstance(value, (np.generic, np.ndarray)):
      value = value.tolist()
    attrs[key] = value
  return attrs


def _open_hdf5(path: str):
  try:
    return h5py.File(path, "r")
  except OSError as e:
    raise FeatureError(f"Features file {path} is not a readable HDF5 file ({e}); pass an "
                       "HDF5 file or a directory of {video_id}.npy files.") from None

import numpy as np
import pytest

from data_prep.features import FeatureError, FeatureSource
from tests.data_prep import fixtures


def test_hdf5_dataset_per_video(tmp_path):
  arrays = fixtures.random_features(["a", "b"])
  path = fixtures.write_hdf5(tmp_path / "f.hdf5", arrays)
  with FeatureSource(str(path)) as source:
    np.testing.assert_array_equal(source.load("b"), arrays["b"])
    assert source.missing(["a", "zz", "b", "yy"]) == ["yy", "zz"]
    assert source.feature_dim == 6


def test_hdf5_group_per_video_activitynet_layout(tmp_path):
  arrays = fixtures.random_features(["v_1"], dim=500)
  path = fixtures.write_hdf5(tmp_path / "c3d.hdf5", arrays, group_key="c3d_features")
  with FeatureSource(str(path), "c3d_features") as source:
    np.testing.assert_array_equal(source.load("v_1"), arrays["v_1"])
  # A group with one dataset is read without naming it.
  with FeatureSource(str(path)) as source:
    assert source.load("v_1").shape == (5, 500)
  with FeatureSource(str(path), "nope") as source:
    with pytest.raises(FeatureError, match=r"v_1 is a group holding \['c3d_features'\]"):
      source.load("v_1")


def test_npy_directory_and_i3d_shape(tmp_path):
  i3d = np.random.default_rng(0).normal(size=(7, 1, 1, 16)).astype(np.float64)
  directory = fixtures.write_npy_dir(tmp_path / "i3d", {"AAAAA": i3d})
  with FeatureSource(str(directory)) as source:
    loaded = source.load("AAAAA")
  assert loaded.dtype == np.float32 and loaded.shape == (7, 16)
  np.testing.assert_allclose(loaded, i3d[:, 0, 0, :].astype(np.float32))


@pytest.mark.parametrize("bad, message", [
    (np.full((4, 6), np.nan, np.float32), "NaN/Inf values, in rows"),
    (np.zeros((0, 6), np.float32), "expected \\[T, D\\]"),
    (np.zeros((4, 2, 6), np.float32), "expected \\[T, D\\]"),
    (np.zeros((4, 5), np.float32), "width 5 differs from the 6"),
])
def test_bad_features_name_the_video(tmp_path, bad, message):
  arrays = {"good": np.zeros((3, 6), np.float32), "bad": bad}
  path = fixtures.write_hdf5(tmp_path / "f.hdf5", arrays)
  with FeatureSource(str(path)) as source:
    source.load("good")
    with pytest.raises(FeatureError, match=message) as info:
      source.load("bad")
  assert "video bad" in str(info.value) and "f.hdf5" in str(info.value)


def test_inf_row_reported(tmp_path):
  array = np.zeros((6, 3), np.float32)
  array[4, 1] = np.inf
  directory = fixtures.write_npy_dir(tmp_path / "d", {"v": array})
  with FeatureSource(str(directory)) as source:
    with pytest.raises(FeatureError, match=r"1 NaN/Inf values, in rows \[4\]"):
      source.load("v")


def test_missing_path_and_not_hdf5(tmp_path):
  with pytest.raises(FeatureError, match="does not exist"):
    FeatureSource(str(tmp_path / "absent.hdf5"))
  (tmp_path / "x.hdf5").write_text("not hdf5")
  with pytest.raises(FeatureError, match="not a readable HDF5 file"):
    FeatureSource(str(tmp_path / "x.hdf5"))

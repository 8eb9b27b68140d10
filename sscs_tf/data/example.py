"""The one TFRecord schema: a `tf.train.Example` per video, holding all its queries.

Features are stored once per video, however many sentences describe it. The writer
(`encode_video`, used by data_prep) and the reader (`parse_video`, used by the input
pipeline) live side by side so they cannot drift apart.

Keys:
  video_id      bytes
  duration      float   seconds
  num_clips     int64   T, rows of the feature matrix
  feature_dim   int64   D
  feature_dtype bytes   "float32" or "float16"
  features      bytes   the `[T, D]` matrix, little-endian, row-major
  query_ids     bytes[Q]  where each query came from ("charades_sta_test.txt:17")
  sentences     bytes[Q]  the raw sentences
  starts, ends  float[Q]  ground-truth interval in seconds, as annotated (format 2; format 1
                          stored them clipped to [0, duration], 2D-TAN's protocol applied)
  protocol_flags int64[Q] `protocol.annotation_flags` (format 2; absent in format 1)
  num_words     int64[Q]  token count per sentence
  word_ids      int64[sum(num_words)]  the sentences' word ids, concatenated
"""

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

FEATURE_DTYPES = ("float32", "float16")


@dataclasses.dataclass(frozen=True)
class QueryRecord:
  query_id: str
  sentence: str
  start: float
  end: float
  word_ids: Sequence[int]
  protocol_flags: int = 0


def _bytes(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _floats(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _ints(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def encode_video(video_id: str, duration: float, features: np.ndarray,
                 queries: Sequence[QueryRecord], feature_dtype: str = "float32") -> bytes:
  """Serializes one video and its queries; `features` is `[T, D]`."""
  if feature_dtype not in FEATURE_DTYPES:
    raise ValueError(f"feature_dtype must be one of {FEATURE_DTYPES}, got {feature_dtype!r}.")
  if features.ndim != 2 or features.shape[0] == 0:
    raise ValueError(f"Video {video_id}: features must be [T>0, D], got {features.shape}.")
  if not queries:
    raise ValueError(f"Video {video_id}: a record needs at least one query.")
  matrix = np.ascontiguousarray(features, dtype=np.dtype(feature_dtype).newbyteorder("<"))
  example = tf.train.Example(features=tf.train.Features(feature={
      "video_id": _bytes([video_id.encode("utf-8")]),
      "duration": _floats([duration]),
      "num_clips": _ints([features.shape[0]]),
      "feature_dim": _ints([features.shape[1]]),
      "feature_dtype": _bytes([feature_dtype.encode("ascii")]),
      "features": _bytes([matrix.tobytes()]),
      "query_ids": _bytes([q.query_id.encode("utf-8") for q in queries]),
      "sentences": _bytes([q.sentence.encode("utf-8") for q in queries]),
      "starts": _floats([q.start for q in queries]),
      "ends": _floats([q.end for q in queries]),
      "protocol_flags": _ints([q.protocol_flags for q in queries]),
      "num_words": _ints([len(q.word_ids) for q in queries]),
      "word_ids": _ints([i for q in queries for i in q.word_ids]),
  }))
  # Deterministic: map fields in key order, so the same inputs give the same bytes in every
  # process (the default order follows the process's string hashing).
  return example.SerializeToString(deterministic=True)


_SPEC = {
    "video_id": tf.io.FixedLenFeature([], tf.string),
    "duration": tf.io.FixedLenFeature([], tf.float32),
    "num_clips": tf.io.FixedLenFeature([], tf.int64),
    "feature_dim": tf.io.FixedLenFeature([], tf.int64),
    "feature_dtype": tf.io.FixedLenFeature([], tf.string),
    "features": tf.io.FixedLenFeature([], tf.string),
    "query_ids": tf.io.VarLenFeature(tf.string),
    "sentences": tf.io.VarLenFeature(tf.string),
    "starts": tf.io.VarLenFeature(tf.float32),
    "ends": tf.io.VarLenFeature(tf.float32),
    "protocol_flags": tf.io.VarLenFeature(tf.int64),
    "num_words": tf.io.VarLenFeature(tf.int64),
    "word_ids": tf.io.VarLenFeature(tf.int64),
}


def parse_video(serialized: tf.Tensor, feature_dim: int, feature_dtype: str = "float32"):
  """Parses one serialized video record (graph-friendly, for `tf.data.Dataset.map`).

  Args:
    serialized: scalar string tensor.
    feature_dim: D, known from the dataset's meta.json; checked against the record.
    feature_dtype: storage dtype, known from meta.json; checked against the record.

  Returns:
    dict with `video_id`, `duration`, `features [T, D] float32`, and per query
    `query_ids [Q]`, `sentences [Q]`, `starts [Q]`, `ends [Q]`, `protocol_flags [Q]` int64
    (zeros for records without them), `word_ids` (ragged `[Q, None]` int32).
  """
  parsed = tf.io.parse_single_example(serialized, _SPEC)
  dense = {k: tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v
           for k, v in parsed.items()}
  checks = [
      tf.debugging.Assert(
          tf.equal(dense["feature_dtype"], feature_dtype),
          ["record feature_dtype differs from meta.json:", dense["feature_dtype"], "vs",
           feature_dtype, "in video", dense["video_id"]]),
      tf.debugging.Assert(
          tf.equal(dense["feature_dim"], feature_dim),
          ["record feature_dim differs from meta.json:", dense["feature_dim"], "vs",
           feature_dim, "in video", dense["video_id"]]),
  ]
  with tf.control_dependencies(checks):
    flat = tf.io.decode_raw(dense["features"], tf.dtypes.as_dtype(feature_dtype),
                            little_endian=True)
  features = tf.cast(tf.reshape(flat, [-1, feature_dim]), tf.float32)
  word_ids = tf.RaggedTensor.from_row_lengths(
      tf.cast(dense["word_ids"], tf.int32), dense["num_words"], validate=False)
  return {
      "video_id": dense["video_id"],
      "duration": dense["duration"],
      "features": features,
      "query_ids": dense["query_ids"],
      "sentences": dense["sentences"],
      "starts": dense["starts"],
      "ends": dense["ends"],
      # Format-1 records have no flags: their times already follow 2D-TAN's protocol.
      "protocol_flags": tf.pad(dense["protocol_flags"],
                               [[0, tf.size(dense["starts"]) - tf.size(dense["protocol_flags"])]]),
      "word_ids": word_ids,
  }

"""Word vectors in the GloVe text format (`word v1 ... vD` per line), any vocabulary size.

The full glove.840B.300d file has 2.2M lines, is cased, and holds words with spaces inside
them, so the word is everything before the last D fields. It is read in one streaming pass;
only the lines of wanted tokens are parsed into floats.

Matching: the project's tokens are case-folded (`sscs_tf.data.text`); a GloVe word equal to a
token is taken first; otherwise the first (most frequent) GloVe word whose case folding
equals the token ("Person" for "person").
"""

import itertools
import time

import numpy as np
import tensorflow_text as tf_text
from absl import logging

_CHUNK = 65536


class GloveError(ValueError):
  pass


def _infer_dim(path: str) -> int:
  with open(path, encoding="utf-8", errors="replace") as f:
    counts = [line.rstrip("\n").count(" ") for line in itertools.islice(f, 20)]
  if not counts or min(counts) < 1:
    raise GloveError(f"{path}: not in the GloVe text format ('word v1 ... vD' per line)")
  # A word holding a space adds to the count; the smallest count over lines is D.
  return min(counts)


def read_glove(path: str, wanted, dim: int = 0) -> tuple[dict[str, np.ndarray], int]:
  """Vectors for the `wanted` tokens found in the file.

  Args:
    path: GloVe text file.
    wanted: the (case-folded) tokens to look up.
    dim: vector size; 0 infers it from the first lines.

  Returns:
    (token -> float32 vector `[dim]`, dim).
  """
  dim = dim or _infer_dim(path)
  wanted = set(wanted)
  exact, folded = {}, {}
  started, lines = time.time(), 0
  with open(path, encoding="utf-8", errors="replace") as f:
    while True:
      chunk = list(itertools.islice(f, _CHUNK))
      if not chunk:
        break
      words = [_word(line, dim, path, lines + i + 1) for i, line in enumerate(chunk)]
      folds = [w.decode("utf-8") for w in tf_text.case_fold_utf8(words).numpy()]
      for i, (word, fold) in enumerate(zip(words, folds)):
        if word in wanted and word not in exact:
          exact[word] = _vector(chunk[i], dim, path, lines + i + 1)
        elif fold in wanted and fold not in folded:
          folded[fold] = _vector(chunk[i], dim, path, lines + i + 1)
      lines += len(chunk)
      if lines % (_CHUNK * 8) == 0:
        logging.info("GloVe: %d lines read (%.0f lines/s)", lines,
                     lines / (time.time() - started))
  return {**folded, **exact}, dim


def _word(line: str, dim: int, path: str, line_number: int) -> str:
  line = line.rstrip("\n")
  if line.count(" ") == dim:
    return line[:line.index(" ")]
  parts = line.rsplit(" ", dim)
  if len(parts) != dim + 1:
    raise GloveError(f"{path}:{line_number}: expected a word and {dim} numbers")
  return parts[0]


def _vector(line: str, dim: int, path: str, line_number: int) -> np.ndarray:
  try:
    vector = np.array(line.rstrip("\n").rsplit(" ", dim)[1:], dtype=np.float32)
  except ValueError:
    raise GloveError(f"{path}:{line_number}: the last {dim} fields are not all numbers")
  if vector.shape != (dim,) or not np.isfinite(vector).all():
    raise GloveError(f"{path}:{line_number}: expected {dim} finite numbers")
  return vector


def embedding_matrix(tokens, vectors: dict[str, np.ndarray], dim: int) -> np.ndarray:
  """`[len(tokens), dim]` float32; rows of tokens without a vector are zero (as the
  reference's torchtext GloVe gives for unknown words)."""
  matrix = np.zeros((len(tokens), dim), np.float32)
  for i, token in enumerate(tokens):
    if token in vectors:
      matrix[i] = vectors[token]
  return matrix

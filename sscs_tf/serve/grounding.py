"""Grounding sentences in one video's features with an exported SavedModel."""

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)

from sscs_tf.core import fileio


def load_features(path: str) -> np.ndarray:
  """`[T, D]` float32 from a .npy file of `[T, D]` or `[T, 1, 1, D]`; ValueError naming the
  file when it is not a readable numeric .npy."""
  array = fileio.load_npy(path)
  if not np.issubdtype(array.dtype, np.number):
    raise ValueError(f"{path}: features have dtype {array.dtype}, not numeric")
  if array.ndim == 4 and array.shape[1:3] == (1, 1):
    array = array.reshape(array.shape[0], array.shape[3])
  if array.ndim != 2 or array.shape[0] == 0:
    raise ValueError(f"{path}: features have shape {array.shape}; expected [T, D] or "
                     "[T, 1, 1, D] with T > 0")
  return array.astype(np.float32)


def ground(model_dir: str, features: np.ndarray, duration: float, queries):
  """Returns (segments [Q, k, 2], scores [Q, k]) for each query against one video.

  Raises ValueError with the model's own message when it refuses the request (an empty
  sentence, a feature width it was not trained on, NaN features, a duration <= 0).
  """
  model = tf.saved_model.load(model_dir)  # holds the variables the signature reads
  serve = model.signatures["serving_default"]
  count = len(queries)
  try:
    out = serve(sentences=tf.constant(list(queries)),
                features=tf.constant(np.repeat(features[None], count, axis=0)),
                lengths=tf.fill([count], features.shape[0]),
                durations=tf.fill([count], float(duration)))
  except tf.errors.InvalidArgumentError as error:
    raise ValueError(f"{model_dir} refused the request: {request_error(error)}") from None
  return out["segments"].numpy(), out["scores"].numpy()


def request_error(error: tf.errors.InvalidArgumentError) -> str:
  """The serving signature's check that failed, without TensorFlow's node trace."""
  lines = [line.strip() for line in error.message.splitlines()]
  for line in lines:
    if "assertion failed:" in line:
      return line.split("assertion failed:", 1)[1].strip()
  # Not one of the signature's checks: TensorFlow's own message, without its headers.
  return next((line for line in lines if line and not line.startswith(
      ("Graph execution error", "Detected at node", "<stack traces", "[["))), str(error))

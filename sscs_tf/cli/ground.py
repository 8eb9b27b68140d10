r"""Grounds sentences in your own video features with an exported model.

  sscs-ground --model exports/tan_ss --features video.npy --duration 30.5 \
      --query "a person opens the door." [--query "..."]

`video.npy` is `[T, D]` or `[T, 1, 1, D]` (I3D), the same kind of features the model was
trained on (not normalised; the model does that).
"""

import numpy as np
from absl import app, flags

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)

_MODEL = flags.DEFINE_string("model", None, "SavedModel folder from sscs-export.",
                             required=True)
_FEATURES = flags.DEFINE_string("features", None, ".npy file of the video's clip features.",
                                required=True)
_DURATION = flags.DEFINE_float("duration", None, "Video duration in seconds.", required=True)
_QUERY = flags.DEFINE_multi_string("query", None, "Sentence to ground (repeatable).",
                                   required=True)


def load_features(path: str) -> np.ndarray:
  array = np.load(path, allow_pickle=False)
  if array.ndim == 4 and array.shape[1:3] == (1, 1):
    array = array.reshape(array.shape[0], array.shape[3])
  if array.ndim != 2 or array.shape[0] == 0:
    raise ValueError(f"{path}: features have shape {array.shape}; expected [T, D] or "
                     "[T, 1, 1, D] with T > 0")
  return array.astype(np.float32)


def ground(model_dir: str, features: np.ndarray, duration: float, queries):
  """Returns (segments [Q, k, 2], scores [Q, k]) for each query against one video."""
  serve = tf.saved_model.load(model_dir).signatures["serving_default"]
  count = len(queries)
  out = serve(sentences=tf.constant(list(queries)),
              features=tf.constant(np.repeat(features[None], count, axis=0)),
              lengths=tf.fill([count], features.shape[0]),
              durations=tf.fill([count], float(duration)))
  return out["segments"].numpy(), out["scores"].numpy()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  features = load_features(_FEATURES.value)
  segments, scores = ground(_MODEL.value, features, _DURATION.value, _QUERY.value)
  for query, query_segments, query_scores in zip(_QUERY.value, segments, scores):
    print(f"{query}")
    for rank, ((start, end), score) in enumerate(zip(query_segments, query_scores), 1):
      if score >= 0:  # padding rows (fewer segments survived NMS) have score -1
        print(f"  {rank}. {start:7.2f} s - {end:7.2f} s   score {score:.4f}")


def run():
  app.run(main)


if __name__ == "__main__":
  run()

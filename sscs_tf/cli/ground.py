r"""Grounds sentences in your own video features with an exported model.

  sscs-ground --model exports/tan_ss --features video.npy --duration 30.5 \
      --query "a person opens the door." [--query "..."]

`video.npy` is `[T, D]` or `[T, 1, 1, D]` (I3D), the same kind of features the model was
trained on (not normalised; the model does that).
"""

from absl import app, flags

from sscs_tf import cli, grounding

_MODEL = flags.DEFINE_string("model", None, "SavedModel folder from sscs-export.",
                             required=True)
_FEATURES = flags.DEFINE_string("features", None, ".npy file of the video's clip features.",
                                required=True)
_DURATION = flags.DEFINE_float("duration", None, "Video duration in seconds.", required=True)
_QUERY = flags.DEFINE_multi_string("query", None, "Sentence to ground (repeatable).",
                                   required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  features = grounding.load_features(_FEATURES.value)
  segments, scores = grounding.ground(_MODEL.value, features, _DURATION.value, _QUERY.value)
  for query, query_segments, query_scores in zip(_QUERY.value, segments, scores):
    print(f"{query}")
    for rank, ((start, end), score) in enumerate(zip(query_segments, query_scores), 1):
      if score >= 0:  # padding rows (fewer segments survived NMS) have score -1
        print(f"  {rank}. {start:7.2f} s - {end:7.2f} s   score {score:.4f}")


def run():
  cli.run("sscs-ground", main)


if __name__ == "__main__":
  run()

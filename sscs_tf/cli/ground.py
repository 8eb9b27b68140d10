r"""Grounds sentences in a video with an exported model.

  sscs-ground --model exports/tan_ss --video clip.mp4 --query "a person opens the door." \
      [--query "..."] [--html grounding.html]
  sscs-ground --model exports/tan_ss --features video.npy --duration 30.5 --query "..."

With --video, the features are extracted as the model's training features were (the preset
and I3D weights its export records, docs/video.md); a model whose training features are of
another or an unknown kind is refused unless --force. With --features, `video.npy` is
`[T, D]` or `[T, 1, 1, D]` (I3D), the same kind of features the model was trained on (not
normalised; the model does that). `--html` also writes the segments as timelines in a
self-contained page; with --video the page plays the video from a clicked segment.
"""

from absl import app, flags

from sscs_tf import cli
from sscs_tf.serve import export_lib, grounding
from sscs_tf.report import run_report

_MODEL = flags.DEFINE_string("model", None, "SavedModel folder from sscs-export.",
                             required=True)
_VIDEO = flags.DEFINE_string("video", None, "Video file to extract features from.")
_FEATURES = flags.DEFINE_string("features", None, ".npy file of the video's clip features.")
_DURATION = flags.DEFINE_float("duration", None, "Video duration in seconds (with --video: "
                               "read from the file when not given).")
_QUERY = flags.DEFINE_multi_string("query", None, "Sentence to ground (repeatable).",
                                   required=True)
_HTML = flags.DEFINE_string("html", "", "Optional HTML page of the segments on a timeline.")
_WEIGHTS = flags.DEFINE_string("weights", "", "With --video: I3D weights (default: those the "
                               "export records; a path for DeepMind's rgb_imagenet).")
_PRESET = flags.DEFINE_string("preset", "", "With --video: extraction preset (default: the "
                              "recorded one).")
_PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"],
                               "With --video: I3D compute precision.")
_FORCE = flags.DEFINE_bool("force", False, "With --video: extract even when the features "
                           "would not be of the kind the model was trained on.")


def _video_features(model_dir: str, path: str):
  # pylint: disable-next=import-outside-toplevel
  from sscs_tf.features import extract, i3d_weights, video
  recorded = export_lib.read_extractor(model_dir)
  try:
    extractor = extract.extractor_for(recorded, _WEIGHTS.value, _PRESET.value,
                                      _PRECISION.value, _FORCE.value)
  except extract.KindError as error:
    raise ValueError(f"{model_dir}: {error}") from None
  except i3d_weights.WeightsUnavailableError as error:
    raise ValueError(str(error)) from None
  try:
    result = extractor.extract(path)
  except video.VideoError as error:
    raise ValueError(str(error)) from None
  duration = _DURATION.value or result.duration or float(result.times[-1, 1])
  return result.features, duration


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if (_VIDEO.value is None) == (_FEATURES.value is None):
    raise app.UsageError("Give exactly one of --video and --features.")
  if _FEATURES.value and _DURATION.value is None:
    raise app.UsageError("--features needs --duration.")
  if _VIDEO.value:
    features, duration = _video_features(_MODEL.value, _VIDEO.value)
  else:
    features, duration = grounding.load_features(_FEATURES.value), _DURATION.value
  segments, scores = grounding.ground(_MODEL.value, features, duration, _QUERY.value)
  for query, query_segments, query_scores in zip(_QUERY.value, segments, scores):
    print(f"{query}")
    for rank, ((start, end), score) in enumerate(zip(query_segments, query_scores), 1):
      if score >= 0:  # padding rows (fewer segments survived NMS) have score -1
        print(f"  {rank}. {start:7.2f} s - {end:7.2f} s   score {score:.4f}")
  if _HTML.value:
    # A video input is linked from the page, which plays it from a clicked segment.
    run_report.write_grounding_report(_HTML.value, _MODEL.value, _QUERY.value, segments,
                                      scores, duration, source=_VIDEO.value or _FEATURES.value,
                                      video=_VIDEO.value or "")
    print(f"Report written to {_HTML.value}")


def run():
  cli.run("sscs-ground", main)


if __name__ == "__main__":
  run()

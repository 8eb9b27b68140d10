"""absl flags shared by the converters, and the main() they all run."""

import os
from typing import Callable

from absl import app, flags, logging

from sscs_tf import cli as tool_cli  # first: quiets TensorFlow's start-up  # isort: skip
from data_prep import convert

TOOLS = {"charades_sta": "sscs-prep-charades", "tacos": "sscs-prep-tacos",
         "activitynet_captions": "sscs-prep-activitynet"}

FLAGS = flags.FLAGS


def define_flags(default_feature_key: str = "") -> None:
  flags.DEFINE_string("annotation_dir", None, "Directory holding the annotation files.",
                      required=True)
  flags.DEFINE_string("features", None, "HDF5 file, or directory of {video_id}.npy files.",
                      required=True)
  flags.DEFINE_string("output_dir", None, "Where to write TFRecords, vocab and meta.json.",
                      required=True)
  flags.DEFINE_string("glove", "", "Optional GloVe text file (any size); writes "
                      "embeddings.npy aligned with vocab.txt.")
  flags.DEFINE_integer("glove_dim", 0, "GloVe vector size; 0 infers it from the file.")
  flags.DEFINE_integer("num_shards", 8, "TFRecord shards per split (at most one per video).")
  flags.DEFINE_enum("feature_dtype", "float32", ["float32", "float16"],
                    "Storage type of the features in the TFRecords.")
  flags.DEFINE_string("feature_key", default_feature_key, "For HDF5 files with a group per "
                      "video: the dataset inside each group.")
  flags.DEFINE_integer("min_word_count", 1, "Training words seen fewer times are <unk>.")
  flags.DEFINE_bool("allow_missing_features", False, "Skip (and report) the queries of "
                    "videos without features instead of failing.")
  flags.DEFINE_bool("skip_malformed", False, "Skip (and report) annotation entries that "
                    "cannot be parsed instead of failing.")


def options_from_flags() -> convert.Options:
  return convert.Options(
      num_shards=FLAGS.num_shards, feature_dtype=FLAGS.feature_dtype,
      feature_key=FLAGS.feature_key, glove=FLAGS.glove, glove_dim=FLAGS.glove_dim,
      min_word_count=FLAGS.min_word_count,
      allow_missing_features=FLAGS.allow_missing_features)


def run(dataset: str, read_splits: Callable[[str, bool], list]) -> None:
  """Runs the converter as an absl app; `read_splits(annotation_dir, skip_malformed)`."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    splits = read_splits(FLAGS.annotation_dir, FLAGS.skip_malformed)
    convert.convert(dataset, splits, FLAGS.features, FLAGS.output_dir, options_from_flags())
    logging.info("Wrote %s", os.path.join(FLAGS.output_dir, convert.META_FILE))

  tool_cli.run(TOOLS.get(dataset, f"prep-{dataset}"), main)

r"""Charades-STA -> TFRecords.

  python -m data_prep.charades_sta --annotation_dir DIR --features i3d_features/ \
      --output_dir data/charades_sta_i3d [--glove glove.840B.300d.txt]

DIR holds charades_sta_{train,test}.txt and the durations: Charades_v1_{train,test}.csv, or
charades.json (VSLNet's annotation variant, 26hzhang/VSLNet data/dataset/charades, whose
train file corrects four reversed lines; docs/data.md).

Charades-STA publishes no validation split. The converter carves one out of the training
videos: VAL_FRACTION of them (by video, so no video is in both; drawn with --val_seed) become
the `val` split that picks the best checkpoint and drives plateau schedules, so the test
split never steers training. meta.json records the fraction, the seed and the counts.
`--val_fraction 0` keeps all of train as published (no `val`; the configs then need
`val_split=` and train without checkpoint selection).
"""

import os

from absl import flags

from data_prep import cli  # first: quiets TensorFlow's start-up  # isort: skip
from data_prep import annotations

SPLITS = ("train", "test")
# Decision: 10% of the training videos (534 videos and 1,279 queries of the released train
# file, leaving 4,802 and 11,125): enough queries to rank checkpoints, little taken away.
VAL_FRACTION = 0.1
VAL_SEED = 0


def read_splits(annotation_dir: str, skip_malformed: bool = False,
                val_fraction: float = 0.0, val_seed: int = VAL_SEED):
  """[train, test] as released, or [train, val, test] with val_fraction of the training
  videos carved out (the command line's default: VAL_FRACTION)."""
  csvs = [os.path.join(annotation_dir, f"Charades_v1_{s}.csv") for s in SPLITS]
  json_path = os.path.join(annotation_dir, "charades.json")
  invalid = {} if skip_malformed else None
  if not any(map(os.path.isfile, csvs)) and os.path.isfile(json_path):
    durations = annotations.read_charades_json_durations(json_path, invalid)
  else:
    durations = annotations.read_charades_durations(csvs, invalid)
  train, test = [annotations.read_charades_sta(
      os.path.join(annotation_dir, f"charades_sta_{s}.txt"), durations, s, skip_malformed,
      invalid) for s in SPLITS]
  if not val_fraction:
    return [train, test]
  return [*annotations.carve_validation(train, val_fraction, val_seed), test]


def run():
  cli.define_flags()
  flags.DEFINE_float("val_fraction", VAL_FRACTION, "Fraction of the training videos held "
                     "out as the `val` split; 0 trains on all of train as published.")
  flags.DEFINE_integer("val_seed", VAL_SEED, "Seed of the draw of the validation videos.")
  cli.run("charades_sta", lambda annotation_dir, skip_malformed: read_splits(
      annotation_dir, skip_malformed, flags.FLAGS.val_fraction, flags.FLAGS.val_seed))


if __name__ == "__main__":
  run()

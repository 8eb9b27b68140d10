r"""Charades-STA -> TFRecords.

  python -m data_prep.charades_sta --annotation_dir DIR --features i3d_features/ \
      --output_dir data/charades_sta_i3d [--glove glove.840B.300d.txt]

DIR holds charades_sta_{train,test}.txt and Charades_v1_{train,test}.csv (durations).
"""

import os

from data_prep import annotations, cli

SPLITS = ("train", "test")


def read_splits(annotation_dir: str, skip_malformed: bool = False):
  csvs = [os.path.join(annotation_dir, f"Charades_v1_{s}.csv") for s in SPLITS]
  invalid = {} if skip_malformed else None
  durations = annotations.read_charades_durations(csvs, invalid)
  return [annotations.read_charades_sta(
      os.path.join(annotation_dir, f"charades_sta_{s}.txt"), durations, s, skip_malformed,
      invalid) for s in SPLITS]


def run():
  cli.define_flags()
  cli.run("charades_sta", read_splits)


if __name__ == "__main__":
  run()

r"""TACoS (the 2D-TAN json split) -> TFRecords.

  python -m data_prep.tacos --annotation_dir DIR --features tall_c3d_features.hdf5 \
      --output_dir data/tacos_c3d [--glove glove.840B.300d.txt]

DIR holds {train,val,test}.json; timestamps are frames, with fps and num_frames per video.
"""

import os

from data_prep import cli  # first: quiets TensorFlow's start-up  # isort: skip
from data_prep import annotations

SPLITS = ("train", "val", "test")


def read_splits(annotation_dir: str, skip_malformed: bool = False):
  return [annotations.read_tacos(os.path.join(annotation_dir, f"{s}.json"), s, skip_malformed)
          for s in SPLITS]


def run():
  cli.define_flags()
  cli.run("tacos", read_splits)


if __name__ == "__main__":
  run()

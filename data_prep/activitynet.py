r"""ActivityNet Captions -> TFRecords.

  python -m data_prep.activitynet --annotation_dir DIR \
      --features sub_activitynet_v1-3.c3d.hdf5 --output_dir data/activitynet_c3d

DIR holds train.json, val_1.json (our `val` split) and val_2.json (our `test` split), as in
2D-TAN. Features are read as f[video_id]["c3d_features"] (--feature_key).
"""

import os

from data_prep import cli  # first: quiets TensorFlow's start-up  # isort: skip
from data_prep import annotations

SPLITS = (("train", "train.json"), ("val", "val_1.json"), ("test", "val_2.json"))


def read_splits(annotation_dir: str, skip_malformed: bool = False):
  return [annotations.read_activitynet(os.path.join(annotation_dir, f), s, skip_malformed)
          for s, f in SPLITS]


def run():
  cli.define_flags(default_feature_key="c3d_features")
  cli.run("activitynet_captions", read_splits)


if __name__ == "__main__":
  run()

r"""Trains a grounding model (with or without Sscs), evaluating as it goes.

  sscs-train --config configs/tan_charades.py:sscs=ss --workdir runs/tan_ss \
      --config.data.data_dir=data/charades_sta_i3d [--config.train.precision=mixed_bfloat16]

Started again with the same command, a run resumes from its last checkpoint.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from sscs_tf import cli
from sscs_tf.train import train_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with an argument: configs/tan_charades.py:sscs=ss",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the run: checkpoints, TensorBoard "
                               "logs, the final config.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  table = train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  logging.info("Final evaluation: %s", table)


def run():
  flags.mark_flags_as_required(["config"])
  cli.run("sscs-train", main)


if __name__ == "__main__":
  run()

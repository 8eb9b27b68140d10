r"""Compares Sscs variants over seeds on any dataset: trains each (variant, seed) in turn and
writes the table (sscs_tf/train/study.py).

  sscs-study --config configs/tan_charades.py --variants off,gtc,ss --seeds 0,1,2 \
      --workdir studies/charades --config.data.data_dir=data/charades_sta_i3d

Started again with the same command, it skips finished runs and resumes an interrupted one.
Writes {workdir}/study.md and study.json; `tensorboard --logdir {workdir}/runs` shows the
runs side by side.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from sscs_tf import cli
from sscs_tf.train import study

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with an argument, as for sscs-train.",
    lock_config=True)
_VARIANTS = flags.DEFINE_list("variants", ["off", "gtc", "ss"], "Sscs variants "
                              "(configs/training.py); `off` is the baseline of the paired "
                              "differences.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds (integers).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the study: runs/, study.md, "
                               "study.json.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  try:
    seeds = [int(seed) for seed in _SEEDS.value]
  except ValueError:
    raise app.UsageError(f"--seeds must be integers, got {_SEEDS.value}") from None
  summary = study.run_study(_CONFIG.value, _VARIANTS.value, seeds, _WORKDIR.value)
  print(study.markdown(summary))


def run():
  flags.mark_flags_as_required(["config"])
  cli.run("sscs-study", main)


if __name__ == "__main__":
  run()

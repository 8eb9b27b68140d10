"""What the tools that import the authors' released weights share (sscs-import-2dtan,
sscs-import-lgi): their flags, and a checkpoint made into a run folder (config.json and
best/ckpt-0) that sscs-eval and sscs-export read. PyTorch reads the checkpoints, tensors
only (`sscs_tf/models/torch_checkpoint.py`; `pip install '.[torch]'`)."""

from absl import app, flags, logging
from ml_collections import config_flags

from sscs_tf import cli, models
from sscs_tf.run import run_dir
from sscs_tf.train.run_config import prepare_config

CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The config the checkpoint was trained with (configs/tan_*.py for "
    "2D-TAN, configs/lgi_*.py for LGI), with --config.data.data_dir the data to evaluate.",
    lock_config=True)
CHECKPOINT = flags.DEFINE_string("checkpoint", None, "The authors' .pkl / .pth file.",
                                 required=True)
WORKDIR = flags.DEFINE_string("workdir", None, "Run folder to write.", required=True)


def run(tool: str, model_name: str, label: str, read_checkpoint, load_weights) -> None:
  """Runs `tool`: reads --checkpoint with `read_checkpoint(path) -> state`, builds the
  model of --config (whose `model.name` must be `model_name`; `label` names it in the
  error), fills it with `load_weights(model, config, state)` and writes --workdir."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    if CONFIG.value.model.name != model_name:
      raise app.UsageError(f"--config must be a config of {label} "
                           f"(configs/{model_name}_*.py).")
    state = read_checkpoint(CHECKPOINT.value)
    config = prepare_config(CONFIG.value)
    model = models.build_model(config.model)
    load_weights(model, config, state)
    path = run_dir.write_run(config, model, WORKDIR.value)
    print(f"Imported {CHECKPOINT.value} as {path}; evaluate with: sscs-eval --workdir "
          f"{WORKDIR.value}")

  flags.mark_flags_as_required(["config"])
  cli.run(tool, main)

r"""Imports the authors' released 2D-TAN checkpoint into a run folder, to evaluate or export
it with this project's tools.

  sscs-import-2dtan --checkpoint 2dtan_charades_vgg_pool.pkl --workdir runs/2dtan_ref \
      --config configs/tan_charades.py:variant=pool,feature=vgg \
      --config.data.data_dir=data/charades_sta_vgg
  sscs-eval --workdir runs/2dtan_ref

Needs PyTorch to read the .pkl (`pip install '.[torch]'`). The reference keeps GloVe outside
the model; the word vectors come from the data folder's embeddings.npy (data_prep --glove).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from sscs_tf import cli, models
from sscs_tf.run import run_dir
from sscs_tf.models import tan_import
from sscs_tf.train.run_config import prepare_config

_CONFIG = config_flags.DEFINE_config_file("config", None, "The 2D-TAN config the checkpoint "
                                          "was trained with.", lock_config=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "The authors' .pkl / .pth file.",
                                  required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder to write.", required=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  if _CONFIG.value.model.name != "tan":
    raise app.UsageError("--config must be a 2D-TAN config (configs/tan_*.py).")
  state_dict = tan_import.load_torch_checkpoint(_CHECKPOINT.value)
  config = prepare_config(_CONFIG.value)
  model = models.build_model(config.model)
  tan_import.load_reference_weights(model, state_dict)
  path = run_dir.write_run(config, model, _WORKDIR.value)
  print(f"Imported {_CHECKPOINT.value} as {path}; evaluate with: sscs-eval --workdir "
        f"{_WORKDIR.value}")


def run():
  flags.mark_flags_as_required(["config"])
  cli.run("sscs-import-2dtan", main)


if __name__ == "__main__":
  run()

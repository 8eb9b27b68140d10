r"""Imports the authors' released 2D-TAN checkpoint into a run folder, to evaluate or export
it with this project's tools.

  sscs-import-2dtan --checkpoint 2dtan_charades_vgg_pool.pkl --workdir runs/2dtan_ref \
      --config configs/tan_charades.py:variant=pool,feature=vgg \
      --config.data.data_dir=data/charades_sta_vgg
  sscs-eval --workdir runs/2dtan_ref

Needs PyTorch to read the .pkl (`pip install '.[torch]'`). The reference keeps GloVe outside
the model; the word vectors come from the data folder's embeddings.npy (data_prep --glove).
"""

from absl import flags

from sscs_tf.cli import reference_import
from sscs_tf.models import tan_import

flags.adopt_module_key_flags(reference_import)


def _load_weights(model, config, state_dict):
  del config  # the word vectors are the data folder's, read when the model is built
  tan_import.load_reference_weights(model, state_dict)


def run():
  reference_import.run("sscs-import-2dtan", "tan", "2D-TAN", tan_import.load_torch_checkpoint,
                       _load_weights)


if __name__ == "__main__":
  run()

r"""Imports the authors' LGI checkpoint (github.com/JonghwanMun/LGI4temporalgrounding) into
a run folder, to evaluate or export it with this project's tools.

  sscs-import-lgi --checkpoint pretrained_models/charades_LGI/model.pkl \
      --reference_vocab charades_sta/charades_sta_train.txt --workdir runs/lgi_ref \
      --config configs/lgi_charades.py --config.data.data_dir=data/charades_sta_i3d
  sscs-eval --workdir runs/lgi_ref

Needs PyTorch to read the checkpoint (`pip install '.[torch]'`). The checkpoint's word
embedding rows follow the authors' vocabulary, which their code builds from the training
annotations; --reference_vocab gives it (those annotations, or the query-info JSON their code
writes), and the rows are matched by word to the data folder's vocab.txt.
"""

from absl import flags

from sscs_tf.cli import reference_import
from sscs_tf.models import lgi_import
from sscs_tf.run import run_dir

flags.adopt_module_key_flags(reference_import)
_REFERENCE_VOCAB = flags.DEFINE_string(
    "reference_vocab", None, "The authors' vocabulary: the training annotations their code "
    "built it from (charades_sta_train.txt, ActivityNet Captions' train.json) or its "
    "query-info JSON (with 'wtoi').", required=True)


def _load_weights(model, config, state_dict):
  reference_tokens = lgi_import.read_reference_vocabulary(_REFERENCE_VOCAB.value)
  tokens = run_dir.load_vocabulary(config).tokens
  state_dict = lgi_import.remap_word_embeddings(state_dict, reference_tokens, tokens)
  lgi_import.load_reference_weights(model, state_dict)


def run():
  reference_import.run("sscs-import-lgi", "lgi", "LGI", lgi_import.load_torch_checkpoint,
                       _load_weights)


if __name__ == "__main__":
  run()

"""The grounding models, and what the rest of the project needs to know about each.

`BASELINES` lists one `Baseline` record per model (models/baseline.py), defined next to the
model; `get(name)` looks one up and `build_model(config.model)` builds it. The model contract
(inputs, outputs the Sscs branch reads, checkpoint, training data) is `models/contract.py`.

May import (from sscs_tf): core, data, scoring.
"""

from sscs_tf.models import lgi, tan, vslnet
from sscs_tf.models.baseline import Baseline

BASELINES = {baseline.name: baseline for baseline in (tan.BASELINE, lgi.BASELINE,
                                                          vslnet.BASELINE)}


def get(name: str) -> Baseline:
  """The baseline `config.model.name` names."""
  if name not in BASELINES:
    raise ValueError(f"model.name {name!r} is not one of {sorted(BASELINES)}.")
  return BASELINES[name]


def build_model(model_config):
  """Builds the model of `model_config.name` from the other fields of `model_config`."""
  kwargs = dict(model_config)
  baseline = get(kwargs.pop("name", None))
  if kwargs.get("vocab_size", 1) < 1:
    raise ValueError(f"model.vocab_size is {kwargs['vocab_size']}: training fills it from "
                     "the data's vocab.txt (train.run_config.prepare_config); set it to build the "
                     "model on its own.")
  return baseline.model(**kwargs)


def clip_count(model_config) -> int:
  """T of the `clip_features` the model gives the Sscs branch (2D-TAN: N; LGI: S)."""
  field = get(model_config["name"]).clip_count_field
  if field not in model_config:
    raise ValueError(f"config.model has no field {field!r}, which gives the clip count of "
                     f"model {model_config['name']!r} (its Baseline's clip_count_field).")
  return int(model_config[field])

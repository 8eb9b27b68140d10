"""Models by name: `build_model(config.model)` looks `config.model.name` up in MODELS."""

from sscs_tf.models.lgi import LGI
from sscs_tf.models.tan import TAN

MODELS = {"tan": TAN, "lgi": LGI}

# The `config.model` field giving T of the `clip_features [B, T, H]` each model returns.
_CLIP_COUNT_FIELDS = {"tan": "num_clips", "lgi": "num_segments"}


def build_model(model_config):
  """Builds `MODELS[model_config.name]` from the other fields of `model_config`."""
  kwargs = dict(model_config)
  name = kwargs.pop("name", None)
  if name not in MODELS:
    raise ValueError(f"model.name {name!r} is not one of {sorted(MODELS)}.")
  if kwargs.get("vocab_size", 1) < 1:
    raise ValueError(f"model.vocab_size is {kwargs['vocab_size']}: training fills it from "
                     "the data's vocab.txt (train_state.prepare_config); set it to build the "
                     "model on its own.")
  return MODELS[name](**kwargs)


def num_clips(model_config) -> int:
  """T of the clip features the model exposes to the Sscs branch (tan: N; lgi: S)."""
  name = model_config["name"]
  if name not in _CLIP_COUNT_FIELDS:
    raise ValueError(f"model.name {name!r} is not one of {sorted(_CLIP_COUNT_FIELDS)}.")
  return int(model_config[_CLIP_COUNT_FIELDS[name]])

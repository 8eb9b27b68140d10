"""Models by name: `build_model(config.model)` looks `config.model.name` up in MODELS."""

from sscs_tf.models.tan import TAN

MODELS = {"tan": TAN}


def build_model(model_config):
  """Builds `MODELS[model_config.name]` from the other fields of `model_config`."""
  kwargs = dict(model_config)
  name = kwargs.pop("name", None)
  if name not in MODELS:
    raise ValueError(f"model.name {name!r} is not one of {sorted(MODELS)}.")
  return MODELS[name](**kwargs)

"""Tiny training configs for the trainer, export and CLI tests."""

import pytest

from configs import lgi_demo, tan_demo, vslnet_demo
from sscs_tf.train.run_config import prepare_config


def _shrink(config, data_dir: str, train: dict):
  """Width 16, batches of 8 and frequent logs and checkpoints: a few steps take seconds."""
  with config.unlocked():
    config.data.data_dir = data_dir
    config.data.batch_size = 8
    config.data.eval_batch_size = 32
    config.data.shuffle_buffer = 64
    config.model.feature_dim = 32
    config.model.hidden_size = 16
    config.sscs.dim = 16
    config.sscs.caption_units = 16
    config.sscs.caption_embedding_dim = 16
    config.train.log_every_steps = 1
    config.train.checkpoint_every_steps = 5
    for key, value in train.items():
      config.train[key] = value
  return config


def tiny_config(data_dir: str, arg: str = "sscs=ss", **train):
  """2D-TAN at width 16 on the demo data."""
  config = tan_demo.get_config(arg + ",epochs=1")
  with config.unlocked():
    config.model.lstm_units = 16
    config.model.map_num_layers = 2
  return _shrink(config, data_dir, train)


def tiny_lgi_config(data_dir: str, arg: str = "sscs=ss", **train):
  """LGI at width 16 on the demo data."""
  config = lgi_demo.get_config(arg + ",epochs=1")
  with config.unlocked():
    config.model.embedding_dim = 16
  return _shrink(config, data_dir, train)


def tiny_vslnet_config(data_dir: str, arg: str = "sscs=ss", **train):
  """VSLNet at width 16 (2 heads) on the demo data."""
  config = vslnet_demo.get_config(arg + ",epochs=1")
  with config.unlocked():
    config.model.num_heads = 2
  return _shrink(config, data_dir, train)


def assert_config_refused(data_dir: str, field: str, value, message: str) -> None:
  """`prepare_config` refuses the tiny config with `field` ("section.name") set to `value`,
  with an error matching `message`."""
  config = tiny_config(data_dir)
  section, name = field.split(".")
  with config.unlocked():
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    prepare_config(config)

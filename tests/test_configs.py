"""Config files: argument parsing, published values, and the models they build."""

import gc

import numpy as np
import pytest

from configs import common, lgi_charades, tan_activitynet, tan_charades, tan_tacos
from sscs_tf.models import build_model

CONFIGS = {"charades": tan_charades, "tacos": tan_tacos, "activitynet": tan_activitynet}


def test_parse_arg_types_values_by_defaults():
  args = common.parse_arg("variant=pool, n=3,lr=0.5,runlocal,debug=false",
                          variant="conv", n=1, lr=1.0, runlocal=False, debug=True)
  assert dict(args) == {"variant": "pool", "n": 3, "lr": 0.5, "runlocal": True, "debug": False}
  assert isinstance(args.n, int) and isinstance(args.lr, float)
  assert dict(common.parse_arg(None, a=1)) == {"a": 1}
  assert dict(common.parse_arg("", a=1)) == {"a": 1}


@pytest.mark.parametrize("arg, message", [
    ("sscs=1", r"Unknown config argument 'sscs'; known: \['n', 'runlocal'\]"),
    ("n=x", "n='x': expected int"),
    ("n", "needs a value"),
    ("runlocal=maybe", "expected a boolean"),
])
def test_parse_arg_errors_are_clear(arg, message):
  with pytest.raises(ValueError, match=message):
    common.parse_arg(arg, n=1, runlocal=False)


@pytest.mark.parametrize("name, arg", [("charades", "variant=avg"), ("charades", "feature=rgb"),
                                       ("tacos", "feature=vgg")])
def test_bad_choices_are_rejected(name, arg):
  with pytest.raises(ValueError, match=arg.split("=")[0]):
    CONFIGS[name].get_config(arg)


@pytest.mark.parametrize("name, variant, expected", [
    # (N, scales, K, L, min/max IoU, IoU thresholds, NMS, D, val split): microsoft/2D-TAN
    # Charades-STA: `val` is carved out of the training videos by data_prep.charades_sta.
    ("charades", "conv", (16, [16], 5, 8, 0.5, 1.0, [0.5, 0.7], 0.5, 1024, "val")),
    ("charades", "pool", (16, [16], 5, 8, 0.5, 1.0, [0.5, 0.7], 0.45, 1024, "val")),
    ("activitynet", "conv", (64, [16, 8, 8], 9, 4, 0.5, 1.0, [0.3, 0.5, 0.7], 0.5, 500, "val")),
    ("activitynet", "pool", (64, [16, 8, 8], 9, 4, 0.5, 1.0, [0.3, 0.5, 0.7], 0.5, 500, "val")),
    ("tacos", "conv", (128, [16, 8, 8, 8], 5, 8, 0.3, 0.7, [0.1, 0.3, 0.5, 0.7], 0.5, 4096,
                       "val")),
    ("tacos", "pool", (128, [16, 8, 8, 8], 5, 8, 0.3, 0.7, [0.1, 0.3, 0.5, 0.7], 0.4, 4096,
                       "val")),
])
def test_published_values(name, variant, expected):
  config = CONFIGS[name].get_config(f"variant={variant}")
  m = config.model
  got = (m.num_clips, list(m.num_scale_layers), m.map_kernel_size, m.map_num_layers,
         config.loss.min_iou, config.loss.max_iou, list(config.eval.iou_thresholds),
         config.eval.nms_thresh, m.feature_dim, config.data.val_split)
  assert got == expected
  assert (m.name, m.map_type, m.hidden_size, m.lstm_units, m.lstm_layers) == (
      "tan", variant, 512, 512, 3)
  assert config.data.map_size == m.num_clips
  assert (config.data.num_segments, config.data.sampling, config.data.batch_size,
          config.data.protocol) == (256, "average", 32, "tan")
  assert (config.optim.learning_rate, config.optim.clip_norm, config.train.num_epochs) == (
      1e-4, 10.0, 100)
  assert config.optim.plateau_monitor == ("loss" if expected[-1] else "")
  assert list(config.eval.ranks) == [1, 5]


def test_charades_trains_on_all_of_train_without_selection_when_asked():
  config = CONFIGS["charades"].get_config("val_split=")
  assert (config.data.val_split, config.optim.plateau_monitor) == ("", "")
  lgi = lgi_charades.get_config("val_split=")
  assert lgi.data.val_split == ""


def test_charades_features_and_lock():
  assert tan_charades.get_config("feature=vgg").model.feature_dim == 4096
  assert tan_charades.get_config("feature=c3d").model.feature_dim == 4096
  config = tan_charades.get_config()
  with pytest.raises(AttributeError):
    config.model.unknown_field = 1


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_runlocal_config_builds_a_small_model(name):
  config = CONFIGS[name].get_config("runlocal")
  # The trainer resolves vocab_size and embeddings_file ("auto") from the data directory.
  config.model.vocab_size, config.model.embeddings_file = 7, ""
  model = build_model(config.model)
  n = config.model.num_clips
  assert (model.hidden_size, model.map_num_layers, model.num_clips) == (32, 2, n)
  outputs = model({"features": np.zeros((1, 256, config.model.feature_dim), np.float32),
                   "feature_mask": np.ones((1, 256), np.float32),
                   "word_ids": np.array([[3, 4]], np.int32), "num_words": np.array([2])})
  assert outputs["scores"].shape == (1, n, n)


def test_build_model_rejects_unknown_name():
  with pytest.raises(ValueError, match="model.name"):
    build_model({"name": "tam"})


@pytest.mark.parametrize("name, feature, variant, expected", [
    # The reference's parameter counts (microsoft/2D-TAN's models), without the frozen GloVe table.
    ("charades", "vgg", "conv", 69_060_609), ("charades", "vgg", "pool", 60_925_953),
    ("activitynet", "c3d", "conv", 108_644_353), ("activitynet", "c3d", "pool", 91_588_609),
    ("tacos", "c3d", "conv", 82_442_241), ("tacos", "c3d", "pool", 60_925_953),
])
def test_full_width_parameter_counts(name, feature, variant, expected, tmp_path):
  config = CONFIGS[name].get_config(f"variant={variant},feature={feature}")
  path = str(tmp_path / "glove.npy")
  np.save(path, np.zeros((10, 300), np.float32))
  config.model.vocab_size, config.model.embeddings_file = 10, path
  model = build_model(config.model)
  assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == expected
  assert model.count_params() == expected + 10 * 300
  del model
  gc.collect()

"""Training faults (a kill during the best save, the leftovers of a killed save) and config
values a run cannot use. Case ids (`case_...`) are rows of docs/reliability.md."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from data_prep import charades_sta, convert
from sscs_tf import cli
from sscs_tf.run import run_dir
from sscs_tf.train import train_lib
from sscs_tf.data import example, pipeline
from sscs_tf.data import meta as data_meta
from sscs_tf.train.run_config import prepare_config
from sscs_tf.train.train_state import TrainState
from sscs_tf.models import contract
from tests.data_prep import fixtures
from tests.testing_train import assert_config_refused, tiny_config, tiny_lgi_config


def checkpoint_values(prefix: str) -> dict:
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


# tf.train.Checkpoint's count of the saves its process made: best/ checkpoints are numbered
# by step, never by this count, and a best save repeated after a kill (between the save and
# best.json) raises it without changing a weight.
SAVE_COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def assert_same_checkpoints(first: str, second: str, ignore=()) -> None:
  a, b = checkpoint_values(first), checkpoint_values(second)
  assert sorted(a) == sorted(b)
  for name in a:
    if name not in ignore:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)


class _Killed(BaseException):
  """Stands for a kill: nothing after it runs, no handler catches it."""


@pytest.mark.slow
def test_kill_during_the_best_save_is_repaired_by_the_restart(tiny_records, tmp_path,
                                                              monkeypatch):
  # case_train_kill_during_best: the kill lands at the last evaluation's best save, where a
  # restart that does not repeat it leaves no best checkpoint at all.
  config = tiny_config(tiny_records, num_epochs=1, checkpoint_every_steps=2)
  train_lib.train_and_evaluate(config, str(tmp_path / "whole"))
  original = TrainState.maybe_save_best
  calls = []

  def killed_on_first(self, step, table, split):
    calls.append(step)
    if len(calls) == 1:
      raise _Killed
    return original(self, step, table, split)

  monkeypatch.setattr(TrainState, "maybe_save_best", killed_on_first)
  with pytest.raises(_Killed):
    train_lib.train_and_evaluate(config, str(tmp_path / "killed"))
  monkeypatch.setattr(TrainState, "maybe_save_best", original)
  train_lib.train_and_evaluate(config, str(tmp_path / "killed"))
  whole, killed = (json.load(open(tmp_path / run / "best" / "best.json"))
                   for run in ("whole", "killed"))
  assert (killed["step"], killed["value"]) == (whole["step"], whole["value"])
  for folder in ("best", "checkpoints"):
    assert_same_checkpoints(tf.train.latest_checkpoint(str(tmp_path / "whole" / folder)),
                            tf.train.latest_checkpoint(str(tmp_path / "killed" / folder)))


def test_best_without_a_best_checkpoint_is_an_error(demo_records, tmp_path):
  # case_eval_best_missing
  config = prepare_config(tiny_config(demo_records))
  state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  state.save(3)
  assert run_dir.checkpoint_path(str(tmp_path), "latest").endswith("ckpt-3")
  with pytest.raises(FileNotFoundError, match="No best checkpoint in .*--checkpoint latest"):
    run_dir.checkpoint_path(str(tmp_path), "best")


def test_stale_temporary_saves_are_removed(demo_records, tmp_path):
  # case_train_stale_temp
  config = prepare_config(tiny_config(demo_records))
  for folder in ("checkpoints", "best"):
    os.makedirs(tmp_path / folder / "ckpt-8_temp")
    (tmp_path / folder / "ckpt-8_temp" / "part-00000-of-00001.index").write_bytes(b"x")
  os.makedirs(tmp_path / "checkpoints" / "notes_temp")  # not a name a save gives
  TrainState(config, tf.distribute.get_strategy(), str(tmp_path)).restore_or_initialize()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["notes_temp"]
  assert os.listdir(tmp_path / "best") == []


@pytest.mark.parametrize("case, field, value, message", [
    ("case_config_batch_zero", "data.batch_size", 0, "config.data.batch_size must be at "
     "least 1, got 0"),
    ("case_config_batch_negative", "data.batch_size", -8, "got -8"),
    ("case_config_eval_batch_zero", "data.eval_batch_size", 0, "eval_batch_size"),
    ("case_config_lr_negative", "optim.learning_rate", -1e-4, "config.optim.learning_rate "
     "must be a positive number, got -0.0001"),
    ("case_config_lr_nan", "optim.learning_rate", float("nan"), "got nan"),
    ("case_config_clip_negative", "optim.clip_norm", -1.0, "clip_norm must be >= 0"),
    ("case_config_weight_decay_negative", "optim.weight_decay", -1e-4,
     r"config.optim.weight_decay must be a finite number >= 0 \(0: none\), got -0.0001"),
    ("case_config_weight_decay_inf", "optim.weight_decay", float("inf"), "weight_decay .* got inf"),
    ("case_config_optimizer_unknown", "optim.name", "sgd", r"config.optim.name must be one "
     r"of \('adam', 'adam_weight_decay'\), got 'sgd'"),
    ("case_config_schedule_unknown", "optim.schedule", "cosine", r"config.optim.schedule "
     r"must be one of \('constant', 'linear'\), got 'cosine'"),
    ("case_config_warmup_negative", "optim.warmup_proportion", -0.1,
     "warmup_proportion must be >= 0"),
    ("case_config_warmup_without_schedule", "optim.warmup_proportion", 0.1,
     "warmup_proportion is a part of the linear schedule"),
    ("case_config_decay_exclusion_bad", "optim.weight_decay_exclude", ("bias", "(gamma"),
     r"config.optim.weight_decay_exclude holds '\(gamma', not a regular expression"),
    ("case_config_sscs_mode_unknown", "sscs.mode", "sc", r"config.sscs.mode must be one of "
     r"\('off', 'gtc', 'ss'\), got 'sc'"),
])
def test_unusable_config_values_are_named(demo_records, case, field, value, message):
  assert_config_refused(demo_records, field, value, message)


def test_a_linear_schedule_and_a_plateau_schedule_are_refused_together(demo_records):
  config = tiny_config(demo_records)
  with config.unlocked():
    config.optim.schedule = "linear"
    config.optim.plateau_monitor = "loss"
  with pytest.raises(ValueError, match=r"config.optim.schedule 'linear' sets the learning "
                     r"rate at every step, so ReduceLROnPlateau \(config.optim."
                     r"plateau_monitor='loss'\) cannot change it"):
    prepare_config(config)


@pytest.mark.parametrize("case, override, expected", [
    ("case_config_misspelt_field", "train.lerning_rate",
     "the config has no field 'train.lerning_rate'; did you mean 'optim.learning_rate'?"),
    ("case_config_misspelt_section", "trian.num_epochs",
     "the config has no field 'trian'; did you mean 'train'?"),
    ("case_config_unknown_field", "data.zzz", "the config has no field 'data.zzz'"),
])
def test_misspelt_override_names_the_nearest_field(case, override, expected):
  message = cli.unknown_field_message(
      ["sscs-train", "--config", "configs/tan_demo.py:sscs=ss", f"--config.{override}=1"],
      AttributeError(override))
  assert message == f"--config.{override}: {expected}"


def test_restoring_into_another_feature_width_names_both(tiny_records, tmp_path):
  # case_train_restore_other_width
  config = prepare_config(tiny_config(tiny_records))
  TrainState(config, tf.distribute.get_strategy(), str(tmp_path)).save(1)
  (tmp_path / "config.json").write_text(config.to_json_best_effort())
  wider = prepare_config(config)
  with wider.unlocked():
    wider.model.feature_dim = 64
  state = TrainState(wider, tf.distribute.get_strategy(), str(tmp_path))
  with pytest.raises(ValueError, match=r"trained with model.feature_dim 32, but this config "
                     r"has 64"):
    state.restore_or_initialize()


def test_non_finite_duration_is_refused_when_read(tmp_path):
  # case_data_duration_nan
  durations = {"AAAAA": 30.0, "BBBBB": 20.0}
  fixtures.write_charades(tmp_path / "ann", ["AAAAA 0.0 6.9##a person opens the door.",
                                             "BBBBB 1.0 3.0##a person sits."],
                          ["BBBBB 1.0 2.0##x."], durations)
  arrays = fixtures.random_features(durations)
  features = fixtures.write_npy_dir(tmp_path / "f", arrays)
  out = str(tmp_path / "out")
  convert.convert("charades_sta", charades_sta.read_splits(str(tmp_path / "ann")), features,
                  out, convert.Options(num_shards=1))
  meta = data_meta.load_meta(out)
  shard = os.path.join(out, meta["splits"]["train"]["files"][0])
  records = [example.parse_video(r, 6, "float32") for r in tf.data.TFRecordDataset(shard)]
  with tf.io.TFRecordWriter(shard) as writer:
    for video in records:
      vid = video["video_id"].numpy().decode()
      queries = [example.QueryRecord(q.decode(), s.decode(), float(a), float(b), [1])
                 for q, s, a, b in zip(video["query_ids"].numpy(), video["sentences"].numpy(),
                                       video["starts"].numpy(), video["ends"].numpy())]
      writer.write(example.encode_video(vid, float("nan") if vid == "BBBBB" else 30.0,
                                        arrays[vid], queries))
  config = tiny_config(out)
  with config.unlocked():
    config.model.feature_dim = 6
  dataset = contract.make_dataset(config, "train", training=False)
  with pytest.raises(pipeline.DataError, match=r"out: \[video\] \[BBBBB\] \[has duration\] "
                     r"\[nan\]"):
    list(pipeline.checked_batches(dataset, out))


def assert_a_resumed_run_is_bitwise_equal(config, tmp_path, monkeypatch):
  """Trains `config` whole, and again stopped after its third checkpoint and started again:
  the last checkpoints and best/ hold the same values."""
  train_lib.train_and_evaluate(config, str(tmp_path / "whole"))
  original = TrainState.save
  saves = []

  def killed_after_third(self, step):
    original(self, step)
    saves.append(step)
    if len(saves) == 3:
      raise _Killed

  monkeypatch.setattr(TrainState, "save", killed_after_third)
  with pytest.raises(_Killed):
    train_lib.train_and_evaluate(config, str(tmp_path / "resumed"))
  monkeypatch.setattr(TrainState, "save", original)
  train_lib.train_and_evaluate(config, str(tmp_path / "resumed"))
  for folder in ("checkpoints", "best"):
    assert_same_checkpoints(tf.train.latest_checkpoint(str(tmp_path / "whole" / folder)),
                            tf.train.latest_checkpoint(str(tmp_path / "resumed" / folder)))


@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["tan", "lgi"])
def test_a_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(tiny_records, tmp_path,
                                                                  monkeypatch, baseline):
  # 2 steps an epoch, 4 in all: the run stops after step 3 and resumes in the second epoch.
  # The data order (seed and epoch) and the random state its layers draw from (LGI's
  # dropout; contract.random_state) come back from the checkpoint.
  config = (tiny_config if baseline == "tan" else tiny_lgi_config)(
      tiny_records, num_epochs=2, checkpoint_every_steps=1)
  assert_a_resumed_run_is_bitwise_equal(config, tmp_path, monkeypatch)


def test_the_random_state_of_dropout_is_checkpointed(tiny_records, tmp_path):
  # LGI's two dropout layers draw from SeedGenerators whose states the checkpoint holds; the
  # caption decoder's GRU holds one too (its dropout is 0: it never draws); a model with
  # none keeps its checkpoint layout.
  for make, arg, count in ((tiny_lgi_config, "sscs=off", 2), (tiny_config, "sscs=off", 0),
                           (tiny_config, "sscs=ss", 1)):
    config = prepare_config(make(tiny_records, arg))
    state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path / f"{arg}{count}"))
    state.save(1)
    names = [name for name, _ in tf.train.list_variables(state.manager.latest_checkpoint)
             if name.startswith("random_state/")]
    assert len(names) == count, (config.model.name, arg, names)


def test_a_checkpoint_without_random_state_still_resumes(tiny_records, tmp_path, caplog):
  # Written before the random state was checkpointed: restored, with a warning that dropout
  # will draw other masks than an uninterrupted run.
  config = prepare_config(tiny_lgi_config(tiny_records))
  state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  state.step.assign(7)
  tf.train.Checkpoint(**{k: v for k, v in state.parts.items() if k != "random_state"}).save(
      str(tmp_path / "checkpoints" / "ckpt"))
  resumed = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  resumed.restore_or_initialize()
  assert resumed.step_value() == 7
  assert "holds no random state" in caplog.text

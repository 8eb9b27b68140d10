import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.evaluate import eval_lib
from sscs_tf.run import run_dir
from sscs_tf.train import objective, train_lib
from sscs_tf.data import meta as data_meta
from sscs_tf.train.schedules import ReduceLROnPlateau
from sscs_tf.train.run_config import prepare_config
from sscs_tf.train.train_state import TrainState
from sscs_tf.models import contract
from tests.testing_train import (assert_config_refused, tiny_config, tiny_lgi_config,
                                 tiny_vslnet_config)


def _event_tags(directory):
  tags = {}
  for path in glob.glob(os.path.join(directory, "**", "events.out.tfevents.*"),
                        recursive=True):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(value)
  return tags


@pytest.mark.parametrize("field, value, message", [
    ("data.eval_split", "tset", r"config.data.eval_split is 'tset', but .* holds the splits "
     r"\['test', 'train', 'val'\]"),
    ("data.val_split", "vla", "config.data.val_split is 'vla'.*carves `val`"),
    ("data.val_split", "test", "val_split and eval_split are both 'test'"),
    ("train.eval_every_epochs", 0, "config.train.eval_every_epochs must be at least 1, got 0"),
    ("train.steps_per_call", 0, "config.train.steps_per_call must be at least 1"),
])
def test_prepare_config_names_a_bad_split_or_period(demo_records, field, value, message):
  assert_config_refused(demo_records, field, value, message)


@pytest.mark.parametrize("metric, values, best_step", [
    ("Rank1@0.5", [0.2, 0.5, 0.3], 2),
    ("loss", [0.9, 0.4, 0.6], 2),  # lower is better
])
def test_best_checkpoint_follows_the_metric_and_survives_a_restart(demo_records, tmp_path,
                                                                   metric, values, best_step):
  config = prepare_config(tiny_config(demo_records, best_metric=metric))
  state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  for step, value in enumerate(values, 1):
    state.maybe_save_best(step, {metric: value}, "val")
  best = json.load(open(tmp_path / "best" / "best.json"))
  assert (best["step"], best["value"], best["split"]) == (best_step, values[best_step - 1],
                                                          "val")
  # A restarted run compares with the stored best: the first value is worse, not saved.
  again = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  again.maybe_save_best(4, {metric: values[0]}, "val")
  assert json.load(open(tmp_path / "best" / "best.json"))["step"] == best_step


def test_a_run_reads_only_the_vocabulary_it_was_trained_with(demo_records):
  config = prepare_config(tiny_config(demo_records))
  assert len(run_dir.load_vocabulary(config)) == config.model.vocab_size
  with config.unlocked():
    config.model.vocab_size += 1
  with pytest.raises(ValueError, match=r"vocab.txt has \d+ words but the model was trained "
                     r"with \d+"):
    run_dir.load_vocabulary(config)


def test_train_on_two_replicas_writes_checkpoints_and_summaries(demo_records, tmp_path,
                                                                two_cpu_strategy):
  config = tiny_config(demo_records, num_train_steps=7, steps_per_call=3,
                       analysis_images=True)
  table = train_lib.train_and_evaluate(config, str(tmp_path), strategy=two_cpu_strategy)
  assert {"Rank1@0.5", "Rank1@0.7", "Rank5@0.5", "Rank5@0.7", "mIoU"} <= set(table)
  # Training evaluates the validation split, never the test split.
  assert table["num_queries"] == json.load(open(os.path.join(
      demo_records, "meta.json")))["splits"]["val"]["queries"]
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-7")
  best = json.load(open(tmp_path / "best" / "best.json"))
  assert (best["metric"], best["split"], best["step"]) == ("Rank1@0.5", "val", 7)
  saved = json.load(open(tmp_path / "config.json"))
  assert saved["model"]["vocab_size"] > 3 and saved["sscs"]["num_clips"] == 16
  assert saved["model"]["embeddings_file"].endswith("embeddings.npy")
  assert saved["word_embeddings"]["kind"] == "frozen GloVe"
  assert saved["word_embeddings"]["glove"]["vocabulary_words_with_vector"] > 3
  train_tags = _event_tags(str(tmp_path / "tensorboard" / "train"))
  for tag in ("loss/total", "loss/vg", "loss/contrast", "loss/caption", "learning_rate",
              "throughput/queries_per_second", "config"):
    assert tag in train_tags, (tag, sorted(train_tags))
  # One scalar per compiled call (steps_per_call 3: steps 3, 6, then 7).
  assert len(train_tags["loss/vg"]) == 3
  assert not os.path.exists(tmp_path / "tensorboard" / "test")
  test_tags = _event_tags(str(tmp_path / "tensorboard" / "val"))
  # Fig. 8 is one image: counts and accuracy side by side (tests/report/test_figures.py).
  for tag in ("metrics/Rank1@0.5", "metrics/mIoU", "loss/vg", "fig7_video_text_similarity",
              "fig8_correct_by_start_and_length", "query/same_top1", "query/top1_on_other_gt",
              "query/shuffled_accuracy_swapped"):
    assert tag in test_tags, (tag, sorted(test_tags))
  image = tf.image.decode_png(test_tags["fig7_video_text_similarity"][0].tensor.string_val[2])
  assert image.shape[-1] == 3 and image.shape[1] >= 1200


def test_checkpoints_hold_every_model_weight(demo_records, tmp_path):
  config = tiny_config(demo_records, num_train_steps=3)
  train_lib.train_and_evaluate(config, str(tmp_path))
  # train.analysis_images off (the tiny configs): the metrics, no figures.
  val_tags = _event_tags(str(tmp_path / "tensorboard" / "val"))
  assert "metrics/Rank1@0.5" in val_tags and not [t for t in val_tags if t.startswith("fig")]
  path = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  stored = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  loaded = []
  for seed in (1, 2):  # a weight the checkpoint missed would keep its seed's random value
    tf.keras.utils.set_random_seed(seed)
    model, _, _ = run_dir.load_model(str(tmp_path), "latest")
    loaded.append([w.numpy() for w in model.weights])
  assert sum(k.startswith("model_weights/") for k in stored) == len(loaded[0])
  for a, b in zip(*loaded):
    np.testing.assert_array_equal(a, b)


def _distributed_batch(strategy, batch):
  dataset = tf.data.Dataset.from_tensors(batch)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.OFF)
  return iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))


def _assert_one_step_same_on_two_replicas(config, batch, two_cpu_strategy, tmp_path):
  """One train step on `batch`, on one device and split over two replicas: the same losses
  and the same weights after it."""
  results = []
  for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
    tf.keras.utils.set_random_seed(0)
    state = TrainState(config, strategy, str(tmp_path / str(len(results))))
    steps = train_lib.make_train_steps(state, strategy, config.data.batch_size)
    history = steps(_distributed_batch(strategy, batch), tf.constant(1)).numpy()
    results.append((history, [v.numpy() for v in state.trainable_variables()]))
  (history_1, weights_1), (history_2, weights_2) = results
  np.testing.assert_allclose(history_2, history_1, rtol=2e-5, atol=1e-6)
  for a, b in zip(weights_1, weights_2):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_one_step_on_two_replicas_equals_one_device(demo_records, tmp_path, two_cpu_strategy):
  """Per-replica loss scaling, the global-batch Sscs negatives and the clipping of the
  summed gradient make a 2-replica step the same update as a 1-device step."""
  config = prepare_config(tiny_config(demo_records))
  with config.unlocked():
    config.optim.clip_norm = 0.05  # small enough that clipping happens
  batch = next(iter(contract.make_dataset(config, "train", training=True, seed=0)))
  _assert_one_step_same_on_two_replicas(config, batch, two_cpu_strategy, tmp_path)


def test_vslnet_step_on_two_replicas_equals_one_device(demo_records, tmp_path,
                                                       two_cpu_strategy):
  """VSLNet cuts a batch to its longest video, query and word and divides its highlighting
  loss by the batch's valid steps: on two replicas the global batch's statistics
  (models/contract.py) make the step the 1-device step."""
  # Without the branch: its global-batch negatives are the 2D-TAN case's above.
  config = prepare_config(tiny_vslnet_config(demo_records, "sscs=off"))
  with config.unlocked():
    config.model.dropout = 0.0  # the replicas would draw other masks
    config.optim.clip_norm = 0.05
  batch = next(iter(contract.make_dataset(config, "train", training=True, seed=0)))
  halves = [{k: v[:4] for k, v in batch.items()}, {k: v[4:] for k, v in batch.items()}]
  steps_of = [int(np.sum(h["feature_mask"], axis=1).max()) for h in halves]
  words_of = [int(np.max(h["num_words"])) for h in halves]
  # Each half alone is cut shorter than the whole batch: the case the statistics are for.
  assert min(steps_of) < max(steps_of) or min(words_of) < max(words_of)
  _assert_one_step_same_on_two_replicas(config, batch, two_cpu_strategy, tmp_path)


def test_global_statistics_are_reduced_over_the_replicas(two_cpu_strategy):
  class Counting:
    @staticmethod
    def batch_statistics(inputs):
      return {"rows": (tf.shape(inputs["features"])[0], "sum"),
              "longest": (tf.reduce_max(inputs["num_words"]), "max")}

  batch = {"features": tf.zeros([4, 3, 2]), "feature_mask": tf.ones([4, 3]),
           "word_ids": tf.ones([4, 5], tf.int32), "num_words": tf.constant([1, 7, 2, 3])}

  @tf.function
  def run(distributed):
    return two_cpu_strategy.run(lambda b: contract.with_global_statistics(Counting, b),
                                args=(distributed,))

  got = run(next(_distributed_batch(two_cpu_strategy, batch)))
  for replica in two_cpu_strategy.experimental_local_results(got["global/rows"]):
    assert float(replica) == 4.0
  for replica in two_cpu_strategy.experimental_local_results(got["global/longest"]):
    assert float(replica) == 7.0
  # One device: nothing added, the model takes its own batch's values.
  assert contract.with_global_statistics(Counting, batch) is batch


def test_non_finite_loss_names_step_and_component(demo_records, tmp_path):
  config = tiny_config(demo_records, num_train_steps=6)
  with config.unlocked():
    config.optim.learning_rate = 1e30
    config.optim.clip_norm = 0.0
  with pytest.raises(train_lib.NonFiniteLossError,
                     match=r"Non-finite loss at step \d: component '(total|vg|contrast|"
                           r"caption)'"):
    train_lib.train_and_evaluate(config, str(tmp_path))


def test_check_finite_reports_the_first_bad_step():
  history = np.array([[1.0, 0.5], [np.nan, 0.4], [np.inf, np.inf]], np.float32)
  with pytest.raises(train_lib.NonFiniteLossError,
                     match=r"step 12: component 'total' = nan"):
    train_lib.check_finite(history, ("total", "vg"), first_step=10)
  train_lib.check_finite(history[:1], ("total", "vg"), first_step=0)


@pytest.mark.parametrize("make_config", [tiny_config, tiny_lgi_config],
                         ids=["tan", "lgi"])
def test_sscs_on_or_off_gives_the_same_inference_weights(make_config, demo_records, tmp_path):
  weights = {}
  for arg in ("sscs=off", "sscs=ss"):
    config = prepare_config(make_config(demo_records, arg))
    tf.keras.utils.set_random_seed(3)
    state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path / arg))
    # Paths without the model's auto-numbered name ("tan_4/...").
    weights[arg] = [(v.path.split("/", 1)[1], v.numpy()) for v in state.model.weights]
    assert (state.branch is None) == (arg == "sscs=off")
  assert [p for p, _ in weights["sscs=off"]] == [p for p, _ in weights["sscs=ss"]]
  for (_, a), (_, b) in zip(weights["sscs=off"], weights["sscs=ss"]):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_steps(precision, demo_records, tmp_path):
  config = prepare_config(tiny_config(demo_records, "sscs=ss", precision=precision))
  try:
    state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
    assert state.loss_scaled == (precision == "mixed_float16")
    steps = train_lib.make_train_steps(state, tf.distribute.get_strategy(),
                                       config.data.batch_size)
    dataset = contract.make_dataset(config, "train", training=True, seed=0)
    before = [v.numpy() for v in state.model.trainable_variables]
    history = steps(iter(dataset), tf.constant(3)).numpy()
    assert np.isfinite(history).all()
    assert state.model.trainable_variables[0].dtype == tf.float32  # float32 master weights
    changed = [not np.array_equal(a, v.numpy())
               for a, v in zip(before, state.model.trainable_variables)]
    # A float16 step whose gradients overflow is skipped (and the scale lowered); most apply.
    assert sum(changed) >= len(changed) // 2
    outputs = state.model(contract.model_inputs(next(iter(dataset))), training=False)
    assert outputs["scores"].dtype == tf.float32
  finally:
    tf.keras.mixed_precision.set_global_policy("float32")


def test_term_names_follow_the_branch(demo_records, tmp_path):
  config = prepare_config(tiny_config(demo_records, "sscs=ss_caption"))
  state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  assert objective.term_names("tan", state.branch) == ("total", "vg", "caption",
                                                        "sscs_fell_back")
  assert objective.term_names("lgi") == ("total", "vg", "regression", "attention_guidance",
                                         "distinct_query")


class _Optimizer:
  def __init__(self, learning_rate):
    self.learning_rate = tf.Variable(learning_rate)


@pytest.mark.parametrize("mode, values, expected_lr", [
    # min: 1.0 improves, then 3 evaluations without improvement > patience 2: one cut.
    ("min", [1.0, 1.0, 0.99995, 1.2], 0.8),
    ("min", [1.0, 0.9, 0.8, 0.7], 1.0),
    # max: a metric; 0.5 then three no-better values.
    ("max", [0.5, 0.5, 0.4, 0.5], 0.8),
])
def test_reduce_lr_on_plateau(mode, values, expected_lr):
  optimizer = _Optimizer(1.0)
  schedule = ReduceLROnPlateau(optimizer, factor=0.8, patience=2, mode=mode)
  reduced = [schedule.update(v) for v in values]
  assert float(optimizer.learning_rate.numpy()) == pytest.approx(expected_lr)
  assert reduced[-1] == (expected_lr != 1.0)


def test_validation_split_alone_picks_the_best_checkpoint_and_drives_the_schedule(
    demo_records, tmp_path, monkeypatch):
  # Scripted per epoch: the validation split peaks at epoch 2, the test split would pick
  # epoch 3; the validation loss keeps falling while the test loss rises.
  scripted = {"val": dict(rank=[0.2, 0.6, 0.4], loss=[0.9, 0.8, 0.7]),
              "test": dict(rank=[0.1, 0.3, 0.9], loss=[0.5, 0.6, 0.7])}
  calls = []
  real_evaluate = eval_lib.evaluate

  def evaluate(model, config, split, **kwargs):
    table, predictions = real_evaluate(model, config, split, **kwargs)
    epoch = sum(1 for s in calls if s == split)
    calls.append(split)
    return dict(table, **{"Rank1@0.5": scripted[split]["rank"][epoch],
                          "loss": scripted[split]["loss"][epoch]}), predictions

  monkeypatch.setattr(eval_lib, "evaluate", evaluate)
  config = tiny_config(demo_records, num_epochs=3, checkpoint_every_steps=100)
  with config.unlocked():
    config.data.batch_size = 32  # a few steps per epoch
    config.optim.plateau_monitor = "loss"
    config.optim.plateau_patience = 0
  steps = data_meta.steps_per_epoch(data_meta.load_meta(demo_records), "train",
                                   config.data.batch_size)
  train_lib.train_and_evaluate(config, str(tmp_path))
  assert calls == ["val"] * 3
  best = json.load(open(tmp_path / "best" / "best.json"))
  assert (best["split"], best["step"], best["value"]) == ("val", 2 * steps, 0.6)
  learning_rate = [e.tensor for e in _event_tags(str(tmp_path / "tensorboard" / "train"))[
      "learning_rate"]]
  # The falling validation loss never reduced the rate (the test loss would have, at once).
  np.testing.assert_allclose([tf.make_ndarray(v) for v in learning_rate],
                              config.optim.learning_rate, rtol=1e-6)


def test_without_a_validation_split_nothing_is_selected_and_no_schedule_may_run(
    demo_records, tmp_path):
  config = tiny_config(demo_records, num_train_steps=2)
  with config.unlocked():
    config.data.val_split = ""
    config.optim.plateau_monitor = ""
    config.eval.query_diagnostics = False
  table = train_lib.train_and_evaluate(config, str(tmp_path))
  assert table["num_queries"] > 0  # the test split's curves, for TensorBoard only
  assert not os.path.exists(tmp_path / "best")
  with config.unlocked():
    config.optim.plateau_monitor = "loss"
  with pytest.raises(ValueError, match="no config.data.val_split: the schedule would follow "
                     "the test split"):
    prepare_config(config)


class _ScriptedState:
  """What `_query_check_due` reads of a TrainState: the config and whether a table is best."""

  def __init__(self, config, best):
    self.config, self.best = config, best

  def is_new_best(self, table):
    return self.best


@pytest.mark.parametrize("every, epoch, step, best, val_split, expected", [
    (0, 4, 10, False, "val", True),    # the last evaluation
    (0, 1, 4, True, "val", True),      # a new best
    (0, 1, 4, False, "val", False),    # neither
    (0, 1, 4, True, "", False),        # no validation split: no best to check
    (2, 1, 4, False, "val", True),     # the 2nd evaluation with every=2
    (2, 2, 6, False, "val", False),    # the 3rd
])
def test_query_check_runs_at_the_last_the_best_and_every_nth_evaluation(
    demo_records, every, epoch, step, best, val_split, expected):
  config = tiny_config(demo_records, query_check_every=every)
  with config.unlocked():
    config.data.val_split = val_split
  check_due = train_lib._query_check_due  # pylint: disable=protected-access
  due = check_due(_ScriptedState(config, best), epoch, step, 10)
  assert (due({"Rank1@0.5": 0.1}) if callable(due) else due) is expected
  with config.unlocked():
    config.eval.query_diagnostics = False
  assert check_due(_ScriptedState(config, best), epoch, step, 10) is False


@pytest.mark.parametrize("every", [0, 1])
def test_training_evaluations_run_the_query_check_only_when_due(demo_records, tmp_path,
                                                                monkeypatch, every):
  checked = []
  real = eval_lib.query_dependence

  def query_dependence(*args):
    checked.append(True)
    return real(*args)

  monkeypatch.setattr(eval_lib, "query_dependence", query_dependence)
  config = tiny_config(demo_records, num_epochs=3, checkpoint_every_steps=100,
                       query_check_every=every)
  with config.unlocked():
    config.data.batch_size = 32
  table = train_lib.train_and_evaluate(config, str(tmp_path))
  assert "query_dependence" in table  # the last evaluation
  best = json.load(open(tmp_path / "best" / "best.json"))
  assert "query_dependence" in best["table"]  # every best
  if every == 1:
    assert len(checked) == 3
  else:
    assert 1 <= len(checked) <= 3
  with pytest.raises(ValueError, match="query_check_every must be 0"):
    with config.unlocked():
      config.train.query_check_every = -1
    prepare_config(config)


@pytest.mark.slow
@pytest.mark.parametrize("make_config", [tiny_config, tiny_lgi_config], ids=["tan", "lgi"])
def test_xla_steps_match_the_graph_steps(make_config, demo_records, tmp_path):
  """train.jit_compile changes how a step runs, not what it computes: the same loss terms
  and gradients, the same losses over steps and the same evaluation outputs, to float32
  round-off. (LGI without dropout: XLA draws other dropout masks from the same seeds.)"""
  config = prepare_config(make_config(demo_records, "sscs=ss"))
  if "dropout" in config.model:
    config.model.dropout = 0.0
  batch = next(iter(contract.make_dataset(config, "train", training=True, seed=0)))
  eval_batch = next(iter(contract.make_dataset(config, config.data.eval_split,
                                               training=False)))
  results = []
  for jit in (False, True):
    with config.unlocked():
      config.train.jit_compile = jit
    tf.keras.utils.set_random_seed(0)
    state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path / str(jit)))
    terms, grads = tf.function(train_lib.make_losses_and_grads(state, 8))(batch)
    steps = train_lib.make_train_steps(state, tf.distribute.get_strategy(),
                                       config.data.batch_size)
    history = steps(iter(tf.data.Dataset.from_tensors(batch).repeat()), tf.constant(3))
    predicted = state.predict_fn(eval_batch)
    results.append(([t.numpy() for t in terms],
                     [tf.convert_to_tensor(g).numpy() for g in grads], history.numpy(),
                     {k: v.numpy() for k, v in predicted.items()}))
  (terms, grads, history, predicted), (xla_terms, xla_grads, xla_history, xla_predicted) = (
      results)
  assert len(terms) == len(objective.term_names(config.model.name, state.branch))
  np.testing.assert_allclose(xla_terms, terms, rtol=1e-5, atol=1e-6)
  assert len(grads) == len(state.trainable_variables())
  # Each weight's gradient to 0.5% of its norm (XLA fuses and reorders the sums: LGI's
  # phrase-attention kernels differ by up to 0.15%, 2D-TAN's by less than 0.1%), or to
  # round-off of the largest gradients for those that are 0 up to round-off (a bias before
  # a softmax).
  scale = max(np.linalg.norm(g) for g in grads)
  for variable, a, b in zip(state.trainable_variables(), grads, xla_grads):
    error = np.linalg.norm(b - a)
    assert error <= 5e-3 * np.linalg.norm(a) + 1e-6 * scale, (variable.path, error)
  np.testing.assert_allclose(xla_history, history, rtol=1e-4, atol=1e-6)
  assert predicted.keys() == xla_predicted.keys()
  for key, value in predicted.items():
    np.testing.assert_allclose(xla_predicted[key], value, rtol=1e-4, atol=1e-5, err_msg=key)

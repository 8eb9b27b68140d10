"""LGI model: shapes, masking, numpy re-implementations of its parts, training with the three
LGI losses and configs (parameter counts: test_lgi_import.py; config round trip, save/reload
and weight counts at tiny widths: test_layers.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import lgi_activitynet, lgi_charades
from sscs_tf.scoring import losses
from sscs_tf.data import preprocess
from sscs_tf.models import build_model, clip_count, lgi, lgi_layers

S, D, V, L = 16, 6, 11, 5  # segments, feature width, vocabulary, words in the tiny tests
OUTPUT_KEYS = ("times", "temporal_attention", "phrase_attention", "clip_features", "clip_mask",
               "sentence_feature")


def make_inputs(batch=3, seed=0, num_valid=(16, 10, 3), num_words=(5, 3, 1)):
  rng = np.random.default_rng(seed)
  num_valid, num_words = np.array(num_valid[:batch]), np.array(num_words[:batch], np.int32)
  feature_mask = (np.arange(S)[None] < num_valid[:, None]).astype(np.float32)
  word_ids = rng.integers(1, V, size=(batch, L)).astype(np.int32)
  word_ids[np.arange(L)[None] >= num_words[:, None]] = 0
  # Padded rows are zero, as the pipeline writes them.
  features = rng.normal(size=(batch, S, D)).astype(np.float32) * feature_mask[..., None]
  return {"features": features, "feature_mask": feature_mask, "word_ids": word_ids,
          "num_words": num_words}


def tiny_lgi(**kwargs):
  args = dict(feature_dim=D, vocab_size=V, embedding_dim=5, hidden_size=8, num_segments=S,
              num_phrases=3, num_nonlocal_blocks=2, num_heads=2, local_kernel_size=3)
  args.update(kwargs)
  return lgi.LGI(**args)


def dense_np(layer, x):
  out = x @ np.asarray(layer.kernel)
  return out + np.asarray(layer.bias) if layer.use_bias else out


def softmax_np(logits, mask):
  logits = np.where(mask, logits, -1e9)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("num_phrases", [1, 3])
def test_output_shapes_eager_and_graph(num_phrases):
  model = tiny_lgi(num_phrases=num_phrases)
  inputs = make_inputs()
  eager = model(inputs)
  # Any batch size and sentence length in one trace, as the trainer feeds them.
  spec = {"features": tf.TensorSpec([None, S, D]), "feature_mask": tf.TensorSpec([None, S]),
          "word_ids": tf.TensorSpec([None, None], tf.int32),
          "num_words": tf.TensorSpec([None], tf.int32)}
  graph_fn = tf.function(lambda x: model(x), input_signature=[spec])
  graph = graph_fn(inputs)
  expected = {"times": (3, 2), "temporal_attention": (3, S),
              "phrase_attention": (3, num_phrases, L), "clip_features": (3, S, 8),
              "clip_mask": (3, S), "sentence_feature": (3, 8)}
  for outputs in (eager, graph):
    assert {k: tuple(v.shape) for k, v in outputs.items()} == expected
    assert all(v.dtype == tf.float32 for v in outputs.values())
  for key in OUTPUT_KEYS:
    np.testing.assert_allclose(graph[key], eager[key], rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(eager["times"]) >= 0)  # relu output
  # Two more padding columns (a batch with a longer sentence) change nothing.
  longer = dict(inputs, word_ids=np.pad(inputs["word_ids"], [[0, 0], [0, 2]]))
  padded = graph_fn(longer)
  assert graph_fn.experimental_get_tracing_count() == 1
  np.testing.assert_allclose(padded["times"], graph["times"], rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(padded["phrase_attention"][:, :, L:], 0.0)


def test_padded_segments_and_words_do_not_change_outputs():
  model = tiny_lgi()
  inputs = make_inputs()
  rng = np.random.default_rng(1)
  padded = inputs["feature_mask"] == 0
  changed = dict(inputs, features=np.where(padded[..., None], rng.normal(size=(3, S, D)) * 100,
                                           inputs["features"]).astype(np.float32),
                 word_ids=np.where(inputs["word_ids"] == 0, 7, inputs["word_ids"]))
  before, after = model(inputs), model(changed)
  for key in OUTPUT_KEYS:
    np.testing.assert_array_equal(before[key], after[key], err_msg=key)
  assert not np.asarray(before["clip_features"])[padded].any()


def test_attention_sums_to_one_over_valid_positions():
  inputs = make_inputs()
  outputs = tiny_lgi()(inputs)
  temporal = np.asarray(outputs["temporal_attention"])
  np.testing.assert_allclose(temporal.sum(-1), 1.0, rtol=1e-6)
  assert not temporal[inputs["feature_mask"] == 0].any()
  phrase = np.asarray(outputs["phrase_attention"])  # [B, N, L]
  np.testing.assert_allclose(phrase.sum(-1), 1.0, rtol=1e-6)
  assert not phrase.transpose(0, 2, 1)[inputs["word_ids"] == 0].any()


def lstm_np(cell, xs):
  """PyTorch's LSTM recurrence, gates i, f, g, o, over the rows of xs."""
  w, u = np.asarray(cell.kernel), np.asarray(cell.recurrent_kernel)
  b = np.asarray(cell.bias) + np.asarray(cell.recurrent_bias)
  h = c = np.zeros(cell.units)
  out = []
  for x in xs:
    i, f, g, o = np.split(x @ w + h @ u + b, 4)
    sig = lambda z: 1 / (1 + np.exp(-z))
    c = sig(f) * c + sig(i) * np.tanh(g)
    h = sig(o) * np.tanh(c)
    out.append(h)
  return np.stack(out)


def test_query_encoder_equals_bidirectional_lstm_over_real_words():
  model = tiny_lgi()
  inputs = make_inputs()
  encoder = model.query_encoder
  words, sentence, mask = encoder(inputs["word_ids"], inputs["num_words"])
  table = np.asarray(encoder.embedding.embeddings)
  for b, n in enumerate(inputs["num_words"]):
    x = table[inputs["word_ids"][b, :n]]  # the real words only: no padding seen
    for forward, backward in encoder.lstms:
      x = np.concatenate([lstm_np(forward.cell, x), lstm_np(backward.cell, x[::-1])[::-1]], -1)
    np.testing.assert_allclose(words[b, :n], x, rtol=1e-5, atol=1e-6)
    assert not np.asarray(words)[b, n:].any()
    units = encoder.units
    np.testing.assert_allclose(sentence[b], np.concatenate([x[n - 1, :units], x[0, units:]]),
                               rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(mask, inputs["word_ids"] > 0)


def test_sequential_query_attention_equals_numpy():
  layer = lgi_layers.SequentialQueryAttention(3, 8, 4)
  layer.build()
  rng = np.random.default_rng(2)
  sentence, words = rng.normal(size=(2, 8)), rng.normal(size=(2, L, 8))
  mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
  phrases, attention = layer(sentence.astype(np.float32), words.astype(np.float32), mask)
  previous = np.zeros((2, 8))
  for n, query in enumerate(layer.phrase_queries):
    guide = np.maximum(dense_np(layer.guide, np.concatenate(
        [dense_np(query, sentence), previous], -1)), 0)
    hidden = np.tanh(dense_np(layer.word_key, words) + dense_np(layer.guide_key, guide)[:, None])
    a = softmax_np(dense_np(layer.score, hidden)[..., 0], mask)
    previous = np.einsum("bl,blh->bh", a, words)
    np.testing.assert_allclose(attention[:, n], a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(phrases[:, n], previous, rtol=1e-5, atol=1e-6)


def test_single_phrase_uses_the_sentence_feature():
  model = tiny_lgi(num_phrases=1)
  assert model.query_attention is None
  outputs = model(make_inputs(), return_intermediates=True)
  np.testing.assert_array_equal(outputs["phrases"][:, 0], outputs["sentence_feature"])
  np.testing.assert_array_equal(outputs["phrase_weights"], np.ones((3, 1), np.float32))
  assert not np.asarray(outputs["phrase_attention"]).any()


@pytest.mark.parametrize("num_heads", [1, 2])
def test_nonlocal_block_equals_numpy(num_heads):
  hidden = 8
  block = lgi_layers.NonLocalBlock(hidden, num_heads)
  block.build()
  rng = np.random.default_rng(3)
  x = rng.normal(size=(2, 7, hidden))
  mask = np.array([[1] * 7, [1] * 4 + [0] * 3], np.float32)
  got = np.asarray(block(x.astype(np.float32), mask))
  key = dense_np(block.key, x)
  query, value = np.split(dense_np(block.query_value, x), 2, axis=-1)
  depth = hidden // num_heads
  expected = x.copy()
  for b in range(2):
    for h in range(num_heads):
      cols = slice(h * depth, (h + 1) * depth)
      logits = key[b, :, cols] @ query[b, :, cols].T / np.sqrt(depth)  # [i, j]
      weights = softmax_np(logits, mask[b][None, :] > 0)  # padded key columns j masked
      expected[b, :, cols] += weights @ value[b, :, cols]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def conv_same_np(x, kernel):
  """Conv1D, "same" zero padding, no bias: x [T, C], kernel [K, C, O]."""
  half = kernel.shape[0] // 2
  padded = np.pad(x, [[half, half], [0, 0]])
  return np.stack([np.einsum("kc,kco->o", padded[t:t + kernel.shape[0]], kernel)
                   for t in range(x.shape[0])])


def batch_norm_np(layer, x):
  gamma, beta, mean, var = (np.asarray(w) for w in layer.weights)
  return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta


def test_phrase_local_context_equals_numpy():
  layer = lgi_layers.PhraseLocalContext(8, 3)
  layer.build()
  rng = np.random.default_rng(4)
  for norm in layer.norms:  # statistics as after training, so inference mode is not identity
    norm.set_weights([rng.uniform(0.5, 2, 8), rng.normal(size=8), rng.normal(size=8),
                      rng.uniform(0.5, 2, 8)])
  video, phrase = rng.normal(size=(2, 6, 8)), rng.normal(size=(2, 8))
  got = np.asarray(layer(video.astype(np.float32), phrase.astype(np.float32)))
  to_video, to_phrase, to_fused = layer.fusion
  relu = lambda z: np.maximum(z, 0)
  m = relu(dense_np(to_fused, relu(dense_np(to_video, video))
                    * relu(dense_np(to_phrase, phrase))[:, None]))  # Eq. 8
  for b in range(2):
    kernels = [np.asarray(conv.kernel) for conv in layer.convs]
    y = relu(batch_norm_np(layer.norms[0], conv_same_np(m[b], kernels[0])))
    y = batch_norm_np(layer.norms[1], conv_same_np(y, kernels[1]))
    np.testing.assert_allclose(got[b], relu(m[b] + y), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_pooling_and_regression_equal_numpy(activation):
  model = tiny_lgi(output_activation=activation)
  inputs = make_inputs()
  out = {k: np.asarray(v) for k, v in model(inputs, return_intermediates=True).items()}
  pooling = model.phrase_pooling
  logits = dense_np(pooling.score, np.tanh(dense_np(pooling.hidden, out["phrases"])))[..., 0]
  np.testing.assert_allclose(out["phrase_weights"], softmax_np(logits, True), rtol=1e-5)
  aggregated = np.einsum("bn,bnth->bth", out["phrase_weights"], out["local_features"])
  x = aggregated.astype(np.float32)
  for block in model.nonlocal_blocks:
    x = block(x, inputs["feature_mask"])
  np.testing.assert_allclose(out["global_features"], x, rtol=1e-5, atol=1e-5)
  attention = model.temporal_attention
  logits = dense_np(attention.score, np.tanh(dense_np(attention.hidden, out["global_features"])))
  o = softmax_np(logits[..., 0], inputs["feature_mask"] > 0)  # Eq. 13
  np.testing.assert_allclose(out["temporal_attention"], o, rtol=1e-5, atol=1e-7)
  embed, hidden, to_times = model.regression
  pooled = np.einsum("bt,bth->bh", o, out["global_features"])  # Eq. 14
  times = dense_np(to_times, np.maximum(dense_np(hidden, dense_np(embed, pooled)), 0))
  times = np.maximum(times, 0) if activation == "relu" else 1 / (1 + np.exp(-times))
  np.testing.assert_allclose(out["times"], times, rtol=1e-5, atol=1e-6)


def test_video_encoder_adds_masked_positions():
  model = tiny_lgi()
  inputs = make_inputs()
  got = np.asarray(model(inputs)["clip_features"])
  encoder = model.video_encoder
  mask = inputs["feature_mask"][..., None]
  expected = (np.maximum(dense_np(encoder.projection, inputs["features"]), 0)
              + np.maximum(np.asarray(encoder.positions), 0)[None]) * mask
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def lgi_losses(outputs, batch, dqa_lambda=0.3):
  """The three LGI terms; the reference sums them with weight 1."""
  return (losses.lgi_regression_loss(outputs["times"], batch["targets"]),
          losses.lgi_attention_guidance_loss(outputs["temporal_attention"],
                                             batch["gt_segment_mask"]),
          losses.lgi_distinct_query_loss(outputs["phrase_attention"], dqa_lambda))


def test_training_steps_reduce_the_lgi_losses():
  keras.utils.set_random_seed(0)
  model = tiny_lgi(dropout=0.0)  # no dropout: the same batch gives comparable losses
  inputs = make_inputs()
  start, end, duration = np.array([1.0, 2.0, 0.5]), np.array([4.0, 9.0, 2.0]), np.full(3, 10.0)
  batch = {"targets": np.stack([start / duration, end / duration], -1).astype(np.float32),
           # What the pipeline emits: n = min(T, 128) valid steps, here the unpadded rows.
           "gt_segment_mask": preprocess.lgi_gt_mask(
               start, end, duration, inputs["feature_mask"].sum(-1), S)}
  optimizer = keras.optimizers.Adam(3e-2)
  history = []
  for step in range(8):  # eager: tracing the LSTM gradients costs more than 8 steps
    with tf.GradientTape() as tape:
      terms = lgi_losses(model(inputs, training=True), batch)
      loss = tf.add_n(terms)
    grads = tape.gradient(loss, model.trainable_variables)
    if step == 0:
      for grad, variable in zip(grads, model.trainable_variables):
        grad = tf.convert_to_tensor(grad)  # the embedding's gradient is sparse
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), variable.path
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    history.append([float(t) for t in terms])
  history = np.array(history)
  assert np.all(np.isfinite(history))
  # Regression and guidance fall; the distinct query term barely moves here: at the
  # near-uniform attention of a tiny model its gradient through the softmax is near zero.
  first, last = history[0, :2].sum(), history[-1, :2].sum()
  assert last < 0.85 * first, history


def test_mixed_bfloat16_keeps_outputs_float32():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    model = tiny_lgi()
  finally:
    keras.mixed_precision.set_global_policy("float32")
  outputs = model(make_inputs())
  assert all(v.dtype == tf.float32 for v in outputs.values())
  assert np.all(np.isfinite(outputs["times"]))
  np.testing.assert_allclose(np.sum(outputs["temporal_attention"], -1), 1.0, rtol=1e-5)


def test_bad_arguments_name_the_field():
  with pytest.raises(ValueError, match="output_activation"):
    tiny_lgi(output_activation="tanh")
  with pytest.raises(ValueError, match="num_heads"):
    tiny_lgi(num_heads=3)
  with pytest.raises(ValueError, match="model.num_heads must be >= 1, got 0"):
    tiny_lgi(num_heads=0)
  with pytest.raises(ValueError, match="local_kernel_size"):
    tiny_lgi(local_kernel_size=4)
  with pytest.raises(ValueError, match="num_phrases"):
    tiny_lgi(num_phrases=0)
  inputs = make_inputs()
  inputs["features"] = inputs["features"][:, :8]
  with pytest.raises(ValueError, match="num_segments"):
    tiny_lgi()(inputs)


CONFIGS = {"charades": lgi_charades, "activitynet": lgi_activitynet}


@pytest.mark.parametrize("name", ["charades", "activitynet"])
def test_build_model_names_an_unfilled_vocabulary(name):
  """The configs leave vocab_size 0 until the data fills it; building says so."""
  with pytest.raises(ValueError, match="model.vocab_size is 0: training fills it"):
    build_model(CONFIGS[name].get_config().model)


@pytest.mark.parametrize("name, expected", [
    # (D, N, blocks, heads, lambda, max words, activation, epochs, val split): the authors' options
    ("charades", (1024, 3, 2, 4, 0.3, 10, "relu", 500, "val")),
    ("activitynet", (500, 5, 1, 1, 0.2, 25, "sigmoid", 300, "val")),
])
def test_published_config_values(name, expected):
  config = CONFIGS[name].get_config()
  m = config.model
  assert (m.feature_dim, m.num_phrases, m.num_nonlocal_blocks, m.num_heads,
          config.loss.dqa_lambda, config.data.max_query_length, m.output_activation,
          config.train.num_epochs, config.data.val_split) == expected
  assert m.max_query_length == config.data.max_query_length
  assert (m.name, m.hidden_size, m.embedding_dim, m.num_segments, m.local_kernel_size,
          m.dropout) == ("lgi", 512, 300, 128, 15, 0.5)
  assert (config.data.sampling, config.data.num_segments, config.data.map_size,
          config.data.batch_size, config.data.eval_split) == ("pick", 128, 0, 100, "test")
  assert config.data.protocol == "lgi"  # annotations as annotated (docs/data.md)
  assert (config.optim.learning_rate, config.optim.clip_norm, config.optim.plateau_monitor) == (
      4e-4, 0.0, "")
  assert (config.loss.regression_weight, config.loss.attention_guidance_weight,
          config.loss.distinct_query_weight) == (1.0, 1.0, 1.0)
  assert list(config.eval.iou_thresholds) == [0.3, 0.5, 0.7] and list(config.eval.ranks) == [1]
  assert clip_count(m) == 128


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_runlocal_config_builds_a_small_model(name):
  config = CONFIGS[name].get_config("runlocal")
  config.model.vocab_size = 7
  model = build_model(config.model)
  assert model.hidden_size == 32
  outputs = model({"features": np.zeros((1, 128, config.model.feature_dim), np.float32),
                   "feature_mask": np.ones((1, 128), np.float32),
                   "word_ids": np.array([[3, 4]], np.int32), "num_words": np.array([2])})
  assert outputs["times"].shape == (1, 2)
  assert outputs["phrase_attention"].shape == (1, config.model.num_phrases, 2)

"""2D-TAN model: map geometry, shapes, exact map values, saving the frozen table, training.

The config round trip, weight counts, trainability of the learned table and the mixed
precision dtypes are checked with every registered layer in test_layers.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.scoring import losses
from sscs_tf.models import tan, tan_sparse
from tests import testing

# (N, num_scale_layers, K, L, valid cells) of the three published configs.
GEOMETRIES = {
    "charades": (16, [16], 5, 8, 136),
    "activitynet": (64, [16, 8, 8], 9, 4, 1104),
    "tacos": (128, [16, 8, 8, 8], 5, 8, 2548),
}


def closed_form_mask(n):
  """The doc's rule on the length l = e - s + 1 and the start s."""
  s, e = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  length = e - s + 1
  valid = (length >= 1) & (length <= 16)
  for step, low, high in ((2, 18, 32), (4, 36, 64), (8, 72, 128)):
    valid |= ((length >= low) & (length <= high) & (length % step == 0) & (s % step == 0))
  return valid


def make_inputs(batch, feature_dim, vocab_size, seed=0, max_words=5):
  rng = np.random.default_rng(seed)
  num_words = rng.integers(1, max_words + 1, size=batch).astype(np.int32)
  word_ids = rng.integers(1, vocab_size, size=(batch, max_words)).astype(np.int32)
  word_ids[np.arange(max_words)[None, :] >= num_words[:, None]] = 0
  return {"features": rng.normal(size=(batch, 256, feature_dim)).astype(np.float32),
          "feature_mask": np.ones((batch, 256), np.float32),
          "word_ids": word_ids, "num_words": num_words}


def tiny_tan(geometry="charades", map_type="conv", **kwargs):
  n, scales, k, layers, _ = GEOMETRIES[geometry]
  args = dict(feature_dim=6, num_clips=n, vocab_size=11, hidden_size=8, map_type=map_type,
              num_scale_layers=scales, map_kernel_size=k, map_num_layers=layers,
              embedding_dim=5, lstm_units=4, lstm_layers=2)
  args.update(kwargs)
  return tan.TAN(**args)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_validity_mask_matches_closed_form(geometry):
  n, scales, _, _, count = GEOMETRIES[geometry]
  mask = tan.validity_mask(n, scales)
  assert mask.sum() == count
  np.testing.assert_array_equal(mask.astype(bool), closed_form_mask(n))


@pytest.mark.shared_data
def test_validity_mask_equals_reference_file():
  reference = np.load(testing.shared_path("parity", "2dtan", "mask_charades_N16.npy"))
  np.testing.assert_array_equal(tan.validity_mask(16, [16]), reference.astype(np.float32))


def test_too_deep_scales_are_rejected():
  with pytest.raises(ValueError, match="too deep"):
    tan.sparse_map_layout(16, [16, 8])


@pytest.mark.parametrize("geometry", ["charades", "activitynet"])
def test_pool_map_is_max_over_clips(geometry):
  n, scales, _, _, _ = GEOMETRIES[geometry]
  layer = tan.SparseTemporalMap(3, n, scales, "pool")
  layer.build((None, n, 3))
  clips = np.random.default_rng(1).normal(size=(2, n, 3)).astype(np.float32)
  got = np.asarray(layer(clips))
  mask = closed_form_mask(n)
  for s, e in zip(*np.nonzero(mask)):
    np.testing.assert_array_equal(got[:, s, e], clips[:, s:e + 1].max(axis=1))
  assert not got[:, ~mask].any()


def test_conv_map_places_each_layer_output_as_documented():
  n, scales = 64, [16, 8, 8]
  layer = tan.SparseTemporalMap(3, n, scales, "conv")
  layer.build((None, n, 3))
  x = np.random.default_rng(2).normal(size=(1, n, 3)).astype(np.float32)
  got = np.asarray(layer(x))[0]
  expected = np.zeros((n, n, 3), np.float32)
  convs, acc = iter(layer.convs), 0
  for k, num_layers in enumerate(scales):
    for i in range(num_layers):
      conv = next(convs)
      kernel, bias = (np.asarray(w) for w in conv.weights)
      size, stride = kernel.shape[0], (2 if (k > 0 and i == 0) else 1)
      x = np.stack([np.einsum("bkc,kcd->bd", x[:, t:t + size], kernel) + bias
                    for t in range(0, x.shape[1] - size + 1, stride)], axis=1)
      for j in range(x.shape[1]):  # output j -> cell (j 2^k, j 2^k + acc + i 2^k)
        expected[j * 2 ** k, j * 2 ** k + acc + i * 2 ** k] = x[0, j]
    acc += 2 ** k * (num_layers + 1)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def reference_map_convs(layer, x, mask):
  """The reference MapConv: pad L (K - 1) / 2 on the first layer only, counts at run time."""
  k, num_layers = layer.kernel_size, layer.num_layers
  mask = tf.constant(mask[None, :, :, None])
  ones = tf.ones((k, k, 1, 1))
  for j, conv in enumerate(layer.convs):
    pad = num_layers * (k - 1) // 2 if j == 0 else 0
    paddings = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    x = tf.nn.relu(conv(tf.pad(x, paddings)))
    count = tf.round(tf.nn.conv2d(tf.pad(mask, paddings), ones, 1, "VALID"))
    weight = tf.where(count > 0, 1.0 / tf.maximum(count, 1.0), 0.0)
    x, mask = x * weight, tf.cast(count > 0, tf.float32)
  return x


# Cells the map convolutions compute, (sparse, reference), summed over the L layers.
SPARSE_CELLS = {"charades": (3840, 7872), "activitynet": (11824, 23424),
                "tacos": (74860, 161984)}


def seeded_map_convs(geometry, impl, hidden_size=4, seed=3):
  """A MaskedMapConv with seeded He-scaled weights (the default init can leave eight
  4-channel relu layers all zero), the same for every impl."""
  n, scales, k, num_layers, _ = GEOMETRIES[geometry]
  layer = tan.MaskedMapConv(hidden_size, k, num_layers, n, scales, impl)
  layer.build()
  rng = np.random.default_rng(seed)
  for conv in layer.convs:
    kernel, bias = conv.get_weights()
    conv.set_weights([rng.normal(size=kernel.shape) * np.sqrt(2 / np.prod(kernel.shape[:3])),
                      rng.normal(size=bias.shape) * 0.1])
  return layer


@pytest.mark.parametrize("impl", tan.MAP_CONV_IMPLS)
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_map_convs_equal_reference_padding_scheme(geometry, impl):
  n, scales = GEOMETRIES[geometry][:2]
  layer = seeded_map_convs(geometry, impl)
  mask = tan.validity_mask(n, scales)
  x = np.random.default_rng(4).normal(size=(2, n, n, 4)).astype(np.float32) * mask[..., None]
  got = np.asarray(layer(x))
  expected = np.asarray(reference_map_convs(layer, x, mask))
  valid = mask.astype(bool)
  assert np.count_nonzero(expected[:, valid]) > expected[:, valid].size // 10  # enough to compare
  if impl == "sparse":  # only the valid cells reach the scores; the rest is never computed
    assert not got[:, ~valid].any()
    got, expected = got[:, valid], expected[:, valid]
  # Same window sums, different conv tilings: float32 rounding only.
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_sparse_map_convs_have_the_dense_gradients(geometry):
  """Every weight's gradient, and the input's at the valid cells (the fusion's mask zeroes the
  others), of a loss on the valid cells; the sparse layer's own backward pass is checked."""
  n, scales = GEOMETRIES[geometry][:2]
  mask = tan.validity_mask(n, scales)
  rng = np.random.default_rng(5)
  x = tf.constant(rng.normal(size=(2, n, n, 4)).astype(np.float32) * mask[..., None])
  upstream = tf.constant(rng.normal(size=(2, n, n, 4)).astype(np.float32) * mask[..., None])
  grads = {}
  for impl in tan.MAP_CONV_IMPLS:
    layer = seeded_map_convs(geometry, impl)
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x) * upstream)
    grads[impl] = [np.asarray(g) for g in tape.gradient(loss, [x] + layer.trainable_variables)]
  valid = mask.astype(bool)
  sparse, dense = grads["sparse"], grads["dense"]
  assert not sparse[0][:, ~valid].any()
  sparse[0], dense[0] = sparse[0][:, valid], dense[0][:, valid]
  for i, (got, expected) in enumerate(zip(sparse, dense)):
    assert np.abs(expected).max() > 0, i
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5 * np.abs(expected).max(),
                               err_msg=f"gradient {i}")


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_sparse_plan_keeps_exactly_the_cells_that_reach_a_score(geometry):
  """Counted independently: a cell of layer j is kept iff it is within j (K - 1) / 2 of the
  validity mask (non-zero in the reference) and within (L - j) (K - 1) / 2 of it (read)."""
  n, scales, k, num_layers, count = GEOMETRIES[geometry]
  mask = tan.validity_mask(n, scales)
  input_cells, plans = tan_sparse.plan(mask, k, num_layers)
  np.testing.assert_array_equal(input_cells, np.flatnonzero(mask))
  half, margin = (k - 1) // 2, num_layers * (k - 1) // 2
  rows, cols = np.nonzero(mask)
  grid = np.arange(n + 2 * margin) - margin
  # Chebyshev distance of every frame cell to the nearest valid cell.
  distance = np.min(np.maximum(np.abs(grid[:, None, None] - rows),
                               np.abs(grid[None, :, None] - cols)), axis=-1)
  for j, layer in enumerate(plans, start=1):
    expected = np.flatnonzero(distance <= min(j, num_layers - j) * half)
    np.testing.assert_array_equal(layer.cells, expected, err_msg=f"layer {j}")
  assert len(plans[-1].cells) == count
  # Against the reference's layers of (N + 2 (L - j) (K - 1) / 2)^2 cells (the module's and
  # docs/benchmarks.md's figures).
  reference = sum((n + 2 * (num_layers - j) * half) ** 2 for j in range(1, num_layers + 1))
  assert (sum(len(p.cells) for p in plans), reference) == SPARSE_CELLS[geometry]


def test_map_conv_paddings_shrink_flops():
  assert tan.map_conv_paddings(5, 8) == [4, 4, 4, 4, 0, 0, 0, 0]
  assert tan.map_conv_paddings(9, 4) == [8, 8, 0, 0]
  assert tan.map_conv_paddings(5, 3) == [4, 2, 0]


@pytest.mark.parametrize("map_type", ["conv", "pool"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_output_shapes_eager_and_graph(geometry, map_type):
  n = GEOMETRIES[geometry][0]
  model = tiny_tan(geometry, map_type)
  inputs = make_inputs(2, 6, 11)
  eager = model(inputs)
  graph = tf.function(lambda x: model(x))(inputs)  # pylint: disable=unnecessary-lambda
  expected = {"scores": (2, n, n), "map_mask": (n, n), "clip_features": (2, n, 8),
              "clip_mask": (2, n), "sentence_feature": (2, 8)}
  for outputs in (eager, graph):
    assert {k: tuple(v.shape) for k, v in outputs.items()} == expected
  np.testing.assert_allclose(graph["scores"], eager["scores"], rtol=1e-5, atol=1e-7)
  mask = np.asarray(eager["map_mask"])
  assert not np.asarray(eager["scores"])[:, mask == 0].any()
  assert np.all(np.asarray(eager["scores"])[:, mask == 1] != 0)


def test_clip_mask_marks_clips_with_any_valid_step():
  model = tiny_tan()
  inputs = make_inputs(1, 6, 11)
  inputs["feature_mask"][0, 40:] = 0.0  # steps 0..39: clips 0, 1 and part of 2 (stride 16)
  np.testing.assert_array_equal(model(inputs)["clip_mask"][0], [1, 1, 1] + [0] * 13)


def test_sentence_ignores_words_past_num_words():
  model = tiny_tan()
  inputs = make_inputs(3, 6, 11)
  changed = dict(inputs, word_ids=np.where(inputs["word_ids"] == 0, 7, inputs["word_ids"]))
  np.testing.assert_array_equal(model(inputs)["sentence_feature"],
                                model(changed)["sentence_feature"])


@pytest.fixture
def embeddings_file(tmp_path):
  path = str(tmp_path / "embeddings.npy")
  np.save(path, np.random.default_rng(4).normal(size=(11, 5)).astype(np.float32))
  return path


def test_keras_save_and_reload(tmp_path, embeddings_file):
  model = tiny_tan(embeddings_file=embeddings_file)
  inputs = make_inputs(2, 6, 11)
  path = str(tmp_path / "tan.keras")
  model.save(path)
  # The saved table, not the file, must come back: change the file after saving.
  np.save(embeddings_file, np.zeros((11, 5), np.float32))
  reloaded = keras.models.load_model(path)
  for key in ("scores", "sentence_feature", "clip_features"):
    np.testing.assert_array_equal(model(inputs)[key], reloaded(inputs)[key])


def test_embeddings_file_shape_is_checked(embeddings_file):
  with pytest.raises(ValueError, match="embeddings_file"):
    tiny_tan(embeddings_file=embeddings_file, vocab_size=12)
  with pytest.raises(FileNotFoundError, match="embeddings_file"):
    tiny_tan(embeddings_file=embeddings_file + ".missing")


def _train_step(model, optimizer, inputs, iou_map):
  with tf.GradientTape() as tape:
    outputs = model(inputs, training=True)
    loss = losses.tan_loss(outputs["scores"], iou_map, outputs["map_mask"], 0.5, 1.0)
  grads = tape.gradient(loss, model.trainable_variables)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  return loss, grads


@pytest.mark.parametrize("map_type", ["conv", "pool"])
def test_training_step_updates_weights_and_keeps_embedding_frozen(map_type, embeddings_file):
  # Two map layers: each layer scales gradients by about 1/K^2 (w = 1/c), so with eight the
  # first layers' Adam steps vanish below float32 resolution of the weights.
  model = tiny_tan(map_type=map_type, embeddings_file=embeddings_file, map_num_layers=2)
  table = model.sentence_encoder.embedding.embeddings
  assert table.path not in {v.path for v in model.trainable_variables}
  before = [np.array(v) for v in model.trainable_variables]
  table_before = np.array(table)
  iou_map = np.random.default_rng(5).uniform(size=(2, 16, 16)).astype(np.float32)
  loss, grads = _train_step(model, keras.optimizers.Adam(1e-3), make_inputs(2, 6, 11), iou_map)
  assert np.isfinite(float(loss))
  for grad, variable, old in zip(grads, model.trainable_variables, before):
    assert grad is not None and np.all(np.isfinite(grad)) and np.any(grad != 0), variable.path
    assert not np.array_equal(old, np.asarray(variable)), variable.path
  np.testing.assert_array_equal(table, table_before)


def test_bad_arguments_name_the_field():
  with pytest.raises(ValueError, match="map_type"):
    tiny_tan(map_type="avg")
  with pytest.raises(ValueError, match="num_clips"):
    tiny_tan(num_clips=24)
  with pytest.raises(ValueError, match="map_kernel_size"):
    tiny_tan(map_kernel_size=4)
  inputs = make_inputs(1, 6, 11)
  inputs["features"] = inputs["features"][:, :128]
  with pytest.raises(ValueError, match="num_sample_clips"):
    tiny_tan()(inputs)

"""2D-TAN (Zhang et al., AAAI 2020) as the authors' PyTorch code computes it, channels-last.

features [B, S, D] -> clip encoder [B, N, H] -> sparse 2D temporal map [B, N, N, H] ->
fusion with the sentence -> masked map convolutions -> 1x1 conv score per cell, times the
validity mask, as the authors' code (microsoft/2D-TAN) computes it (docs/models.md).
"""

import collections
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from sscs_tf.data import preprocess
from sscs_tf.models import heads, layers, tan_layers, tan_sparse
from sscs_tf.models.baseline import Baseline
from sscs_tf.scoring import losses, metrics

# One layer of the sparse map: it writes its `length` outputs to the flat cells `cells`.
ScaleLayer = collections.namedtuple("ScaleLayer", "scale index kernel_size stride length cells")


def sparse_map_layout(num_clips: int, num_scale_layers: Sequence[int]) -> list:
  """The scale layers of the sparse map and the cells each writes, computed once in Python.

  Output i of scale k has length n, and is written at cells (s, s + acc_k + i * 2^k) for
  s = 0, 2^k, ..., (n - 1) * 2^k, where acc_0 = 0 and acc_{k+1} = acc_k + 2^k (L_k + 1).
  """
  layout, length, acc = [], num_clips, 0
  for scale, num_layers in enumerate(num_scale_layers):
    step = 2 ** scale
    for index in range(num_layers):
      if index == 0:
        kernel_size, stride = (1, 1) if scale == 0 else (3, 2)
      else:
        kernel_size, stride = 2, 1
      length = (length - kernel_size) // stride + 1
      if length < 1:
        raise ValueError(f"num_scale_layers={list(num_scale_layers)} is too deep for "
                         f"num_clips={num_clips}: layer {index} of scale {scale} has no output.")
      starts = np.arange(length) * step
      ends = starts + acc + index * step
      assert ends[-1] < num_clips, (scale, index)
      layout.append(ScaleLayer(scale, index, kernel_size, stride, length,
                               starts * num_clips + ends))
    acc += step * (num_layers + 1)
  return layout


def validity_mask(num_clips: int, num_scale_layers: Sequence[int]) -> np.ndarray:
  """`[N, N]` float32: 1 at the cells some scale layer writes, 0 elsewhere."""
  mask = np.zeros(num_clips * num_clips, np.float32)
  for layer in sparse_map_layout(num_clips, num_scale_layers):
    mask[layer.cells] = 1.0
  return mask.reshape(num_clips, num_clips)


def map_conv_paddings(kernel_size: int, num_layers: int) -> list:
  """Per-layer zero padding giving exactly the reference's N x N output with fewer cells.

  The reference pads L (K - 1) / 2 once, before the first layer. After j layers the mask (and
  so every non-zero value) reaches at most j (K - 1) / 2 cells past the N x N map, while the
  final output needs layer j only (L - j) (K - 1) / 2 cells past it. Keeping the margin
  M_j = min(j, L - j) (K - 1) / 2 drops only cells that are exactly zero in the reference: the
  padding is K - 1 in the first L / 2 layers and 0 after (about 1.6x fewer FLOPs for K5 L8).
  """
  half = (kernel_size - 1) // 2
  margins = [min(j, num_layers - j) * half for j in range(num_layers + 1)]
  return [margins[j] - margins[j - 1] + half for j in range(1, num_layers + 1)]


def map_conv_weights(mask: np.ndarray, kernel_size: int, num_layers: int) -> list:
  """Per-layer `w = 1 / c` (0 where c = 0), c = the count of mask cells in each window.

  The reference recomputes these every step; they depend only on the validity mask, so they
  are constants. The mask passed on is `c > 0`.
  """
  weights = []
  for pad in map_conv_paddings(kernel_size, num_layers):
    padded = np.pad(mask, pad)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel_size, kernel_size))
    count = np.round(windows.sum(axis=(-1, -2)))
    weights.append(np.where(count > 0, 1.0 / np.maximum(count, 1.0), 0.0).astype(np.float32))
    mask = (count > 0).astype(np.float32)
  return weights


@keras.saving.register_keras_serializable(package="sscs_tf")
class SparseTemporalMap(keras.layers.Layer):
  """Sparse 2D temporal map: the cell (s, e) holds a feature of clips s..e.

  pool: max pooling chains (the value at (s, e) is the max over clips s..e);
  conv: Conv1D chains at the same positions, no activation between them.
  All layer outputs are concatenated and gathered into the map with one op.

  Args:
    hidden_size: H.
    num_clips: N.
    num_scale_layers: layers per scale, e.g. [16, 8, 8].
    map_type: "pool" or "conv".
  Call: clip features `[B, N, H]` -> `[B, N, N, H]`, zero at invalid cells.
  """

  def __init__(self, hidden_size: int, num_clips: int, num_scale_layers: Sequence[int],
               map_type: str, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.num_clips = num_clips
    self.num_scale_layers = list(num_scale_layers)
    self.map_type = map_type

  def build(self, input_shape=None):
    self.layout = sparse_map_layout(self.num_clips, self.num_scale_layers)
    # gather_index[cell] = 1 + position of the cell in the concatenated outputs; 0 -> zeros row.
    index = np.zeros(self.num_clips * self.num_clips, np.int32)
    offset = 1
    for layer in self.layout:
      index[layer.cells] = np.arange(offset, offset + layer.length)
      offset += layer.length
    self.gather_index = index
    self.convs = []
    if self.map_type == "conv":
      for layer in self.layout:
        conv = keras.layers.Conv1D(
            self.hidden_size, layer.kernel_size, strides=layer.stride,
            kernel_initializer=layers.torch_uniform(self.hidden_size * layer.kernel_size),
            bias_initializer=layers.torch_uniform(self.hidden_size * layer.kernel_size),
            name=f"conv_{layer.scale}_{layer.index}")
        conv.build((None, None, self.hidden_size))
        self.convs.append(conv)

  def _apply(self, i, x):
    layer = self.layout[i]
    if self.map_type == "conv":
      return self.convs[i](x)
    if layer.kernel_size == 1:
      return x
    return ops.max_pool(x, layer.kernel_size, strides=layer.stride, padding="valid")

  def call(self, clip_features):
    x = clip_features
    outputs = [ops.zeros_like(x[:, :1])]
    for i in range(len(self.layout)):
      x = self._apply(i, x)
      outputs.append(x)
    flat = ops.take(ops.concatenate(outputs, axis=1), self.gather_index, axis=1)
    return ops.reshape(flat, (-1, self.num_clips, self.num_clips, self.hidden_size))

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_clips": self.num_clips, "num_scale_layers": self.num_scale_layers,
            "map_type": self.map_type}


# How the map convolutions are computed; both give the reference's scores.
MAP_CONV_IMPLS = ("sparse", "dense")


@keras.saving.register_keras_serializable(package="sscs_tf")
class MaskedMapConv(keras.layers.Layer):
  """L layers of `x = relu(Conv2D(H, K)(x)) * w`, w the inverse mask count of each window.

  impl "sparse" (the default) computes only the cells that can reach a valid cell's score
  (`tan_sparse.plan`: 2.05x fewer than the reference for Charades-STA, 2.16x for TACoS) and
  returns zeros at the cells outside the validity mask, which the head's mask drops anyway;
  "dense" convolves whole maps as the reference does (zero padding L (K - 1) / 2 on the first
  layer only), on smaller maps with the same N x N output (see `map_conv_paddings`). Both hold
  the same Conv2D weights, so checkpoints and imported reference weights serve either.

  Args:
    hidden_size: H.
    kernel_size: K, odd.
    num_layers: L.
    num_clips, num_scale_layers: define the validity mask the counts start from.
    impl: one of MAP_CONV_IMPLS.
  Call: `[B, N, N, H]` -> `[B, N, N, H]`.
  """

  def __init__(self, hidden_size: int, kernel_size: int, num_layers: int, num_clips: int,
               num_scale_layers: Sequence[int], impl: str = "sparse", **kwargs):
    super().__init__(**kwargs)
    if impl not in MAP_CONV_IMPLS:
      raise ValueError(f"model.map_conv_impl must be one of {MAP_CONV_IMPLS}, got {impl!r}.")
    self.hidden_size = hidden_size
    self.kernel_size = kernel_size
    self.num_layers = num_layers
    self.num_clips = num_clips
    self.num_scale_layers = list(num_scale_layers)
    self.impl = impl

  def build(self, input_shape=None):
    if self.kernel_size % 2 != 1:
      raise ValueError(f"map_kernel_size must be odd, got {self.kernel_size}.")
    mask = validity_mask(self.num_clips, self.num_scale_layers)
    if self.impl == "dense":
      self.paddings = map_conv_paddings(self.kernel_size, self.num_layers)
      self.weights_per_layer = map_conv_weights(mask, self.kernel_size, self.num_layers)
    else:
      self.input_cells, self.plans = tan_sparse.plan(mask, self.kernel_size, self.num_layers)
      # output_index[cell] = 1 + the cell's position in the last layer's cells; 0 -> zeros.
      self.output_index = np.zeros(self.num_clips ** 2, np.int32)
      self.output_index[self.input_cells] = np.arange(1, len(self.input_cells) + 1)
    fan_in = self.hidden_size * self.kernel_size ** 2
    self.convs = []
    for j in range(self.num_layers):
      conv = keras.layers.Conv2D(self.hidden_size, self.kernel_size,
                                 kernel_initializer=layers.torch_uniform(fan_in),
                                 bias_initializer=layers.torch_uniform(fan_in), name=f"conv_{j}")
      conv.build((None, None, None, self.hidden_size))
      self.convs.append(conv)

  def call(self, x):
    if self.impl == "dense":
      return self._dense(x)
    n, h = self.num_clips, self.hidden_size
    x = ops.take(ops.reshape(x, (-1, n * n, h)), self.input_cells, axis=1)
    half = keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16")
    chunk = tan_sparse.cells_per_chunk(self.kernel_size, h, 2 if half else 4)
    for conv, layer in zip(self.convs, self.plans):
      y = tan_sparse.gathered_conv(x, ops.cast(conv.kernel, x.dtype), layer, chunk)
      y = ops.relu(y + ops.cast(conv.bias, x.dtype))
      x = y * ops.cast(layer.weight, x.dtype)[None, :, None]
    x = ops.take(ops.concatenate([ops.zeros_like(x[:, :1]), x], axis=1), self.output_index,
                 axis=1)
    return ops.reshape(x, (-1, n, n, h))

  def _dense(self, x):
    for conv, pad, weight in zip(self.convs, self.paddings, self.weights_per_layer):
      if pad:
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
      x = ops.relu(conv(x)) * ops.cast(weight, x.dtype)[None, :, :, None]
    return x

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "kernel_size": self.kernel_size, "num_layers": self.num_layers,
            "num_clips": self.num_clips, "num_scale_layers": self.num_scale_layers,
            "impl": self.impl}


@keras.saving.register_keras_serializable(package="sscs_tf")
class TAN(keras.Model):
  """2D Temporal Adjacent Network; the constructor arguments are `config.model`.

  Args:
    feature_dim: D of the video features.
    num_clips: N, the map size; divides num_sample_clips.
    vocab_size: rows of the word embedding.
    hidden_size: H (512 in every published config).
    num_sample_clips: S, steps per resampled video (256).
    map_type: "conv" or "pool", how the sparse map is built.
    num_scale_layers: layers per scale of the sparse map, e.g. [16] for N = 16.
    map_kernel_size, map_num_layers: K and L of the map convolutions.
    embedding_dim: word vector width (300, GloVe).
    embeddings_file: `.npy` `[vocab_size, embedding_dim]`; given -> initialised and frozen.
    lstm_units, lstm_layers: the sentence LSTM.
    map_conv_impl: "sparse" (default) or "dense", how MaskedMapConv computes; same scores.
  Call: inputs {"features": [B, S, D] float, "feature_mask": [B, S] float, "word_ids": [B, L]
    int (0 = padding), "num_words": [B] int} -> {"scores": [B, N, N] logits times the validity
    mask, "map_mask": [N, N], "clip_features": [B, N, H], "clip_mask": [B, N],
    "sentence_feature": [B, H]}; with return_intermediates also "map_features" [B, N, N, H]
    (the sparse map), "fused" and "map_out" [B, N, N, H].
  """

  def __init__(self, *, feature_dim: int, num_clips: int, vocab_size: int,
               hidden_size: int = 512, num_sample_clips: int = 256, map_type: str = "conv",
               num_scale_layers: Sequence[int] = (16,), map_kernel_size: int = 5,
               map_num_layers: int = 8, embedding_dim: int = 300, embeddings_file: str = "",
               lstm_units: int = 512, lstm_layers: int = 3, map_conv_impl: str = "sparse",
               **kwargs):
    super().__init__(**kwargs)
    if map_type not in ("conv", "pool"):
      raise ValueError(f"model.map_type must be 'conv' or 'pool', got {map_type!r}.")
    if num_sample_clips % num_clips:
      raise ValueError(f"model.num_clips={num_clips} must divide "
                       f"model.num_sample_clips={num_sample_clips}.")
    self.feature_dim = feature_dim
    self.num_clips = num_clips
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_sample_clips = num_sample_clips
    self.map_type = map_type
    self.num_scale_layers = [int(n) for n in num_scale_layers]
    self.map_kernel_size = map_kernel_size
    self.map_num_layers = map_num_layers
    self.embedding_dim = embedding_dim
    self.embeddings_file = embeddings_file
    self.lstm_units = lstm_units
    self.lstm_layers = lstm_layers
    self.map_conv_impl = map_conv_impl
    # Every shape follows from the arguments, so the weights exist right away (for counting
    # and importing them) instead of at the first call.
    self.build()

  def build(self, input_shape=None):
    if self.built:
      return
    n, h = self.num_clips, self.hidden_size
    self.map_mask = validity_mask(n, self.num_scale_layers)
    self.clip_encoder = tan_layers.ClipEncoder(h, n, self.num_sample_clips, name="clip_encoder")
    self.clip_encoder.build((None, self.num_sample_clips, self.feature_dim))
    self.temporal_map = SparseTemporalMap(h, n, self.num_scale_layers, self.map_type,
                                          name="temporal_map")
    self.temporal_map.build((None, n, h))
    self.sentence_encoder = tan_layers.SentenceEncoder(
        self.vocab_size, self.embedding_dim, self.embeddings_file, self.lstm_units,
        self.lstm_layers, h, name="sentence_encoder")
    self.sentence_encoder.build()
    self.fusion = tan_layers.MapFusion(h, name="fusion")
    self.fusion.build()
    self.map_convs = MaskedMapConv(h, self.map_kernel_size, self.map_num_layers, n,
                                   self.num_scale_layers, self.map_conv_impl, name="map_convs")
    self.map_convs.build()
    # Scores stay float32 under mixed precision: the loss and NMS read them.
    self.head = layers.dense(1, h, dtype="float32", name="head")
    self.head.build((None, n, n, h))

  def call(self, inputs, training=False, return_intermediates=False):
    n = self.num_clips
    clip_features = self.clip_encoder(inputs["features"])
    stride = self.num_sample_clips // n
    # A clip is valid when any of its steps is (the reference has no padding: all are).
    clip_mask = ops.max(ops.reshape(ops.cast(inputs["feature_mask"], "float32"), (-1, n, stride)),
                        axis=-1)
    map_features = self.temporal_map(clip_features)
    sentence_feature = self.sentence_encoder(inputs["word_ids"], inputs["num_words"])
    map_mask = ops.convert_to_tensor(self.map_mask, "float32")
    fused = self.fusion(map_features, sentence_feature, map_mask)
    map_out = self.map_convs(fused)
    scores = ops.squeeze(self.head(map_out), axis=-1) * map_mask
    outputs = {"scores": scores, "map_mask": map_mask, "clip_features": clip_features,
               "clip_mask": clip_mask, "sentence_feature": sentence_feature}
    if return_intermediates:
      outputs.update(map_features=map_features, fused=fused, map_out=map_out)
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(
        feature_dim=self.feature_dim, num_clips=self.num_clips, vocab_size=self.vocab_size,
        hidden_size=self.hidden_size, num_sample_clips=self.num_sample_clips,
        map_type=self.map_type, num_scale_layers=self.num_scale_layers,
        map_kernel_size=self.map_kernel_size, map_num_layers=self.map_num_layers,
        embedding_dim=self.embedding_dim, embeddings_file=self.embeddings_file,
        lstm_units=self.lstm_units, lstm_layers=self.lstm_layers,
        map_conv_impl=self.map_conv_impl)
    return config


def grounding_loss(outputs, batch, loss_config):
  """2D-TAN's scaled-IoU BCE per example: {"vg": [B]}. (With one fixed map mask, the mean
  of these equals the reference's batch loss.)"""
  return {"vg": losses.tan_loss_per_example(outputs["scores"], batch["iou_map"],
                                            outputs["map_mask"], loss_config.min_iou,
                                            loss_config.max_iou)}


def targets(batch, data_config):
  """The IoU of every map cell with the ground truth, `iou_map [B, N, N]` (N = data.map_size),
  which the loss scales into its targets."""
  if data_config.map_size < 1:
    raise ValueError(f"data.map_size is {data_config.map_size}: 2D-TAN's IoU targets need the "
                     "map size N (the config's model.num_clips).")
  return {"iou_map": preprocess.iou_map(batch["duration"], batch["start"], batch["end"],
                                        data_config.map_size)}


class Scorer:
  """2D-TAN: sigmoid(scores) * mask, the reference's `joint_prob`, ranked with NMS."""

  # The top-1 hit rule of the paper's table: Rank1@0.5 counts IoU > 0.5.
  TOP1_METRIC, STRICT = "Rank1@0.5", True

  def __init__(self, eval_config):
    self.evaluator = metrics.RankEvaluator(eval_config.nms_thresh, eval_config.iou_thresholds,
                                           eval_config.ranks)

  @staticmethod
  def outputs_to_numpy(outputs):
    probs = tf.sigmoid(tf.cast(outputs["scores"], tf.float32)) * outputs["map_mask"]
    return {"probs": probs}

  def update(self, out, batch):
    gts = np.stack([batch["start"], batch["end"]], axis=1)
    self.evaluator.update(out["probs"], batch["duration"], gts, batch["query_id"])

  def result(self):
    return self.evaluator.result()

  def per_query(self):
    return self.evaluator.per_query()


def serving_head(config) -> heads.TanHead:
  return heads.TanHead(config.model.num_clips, config.eval.nms_thresh, max(config.eval.ranks))


BASELINE = Baseline(
    name="tan", model=TAN, grounding_loss=grounding_loss, loss_terms=("vg",),
    clip_count_field="num_clips", scorer=Scorer, serving_head=serving_head, targets=targets,
    local_run=dict(lstm_units=32, map_num_layers=2), demo_config="configs.tan_demo")


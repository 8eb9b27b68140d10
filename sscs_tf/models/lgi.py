"""LGI (Mun, Cho, Han, CVPR 2020) as the authors' PyTorch code computes it, channels-last.

words -> BiLSTM -> sequential query attention -> N phrase features e_n; segments -> video
encoder v. Per phrase: segment-level fusion and a local residual block; the N results are
pooled with weights from the phrases, then non-local blocks and attention-pooled regression
give (t_s, t_e). See docs/models.md; equation numbers are the LGI paper's.

Padding: the video encoder zeroes padded segments, and every softmax over segments or words
masks them, so the content of padded rows never reaches an output. As in the reference, the
fused features at padded steps are not zero (the fusion's biases and the phrase reach them)
and the kernel-15 convolutions read them near the end of a short video: how many steps are
padded matters, what they hold does not.

Following the authors' code where it differs from a reading of the paper: the phrase
pooling weights are computed from the phrase features e_n (the code pools with
`satt_fn(se_feats)`), and the Linear(512, 512) that the code builds inside that pooling but
whose output it discards is left out (262,656 parameters); batch norm updates its running
variance with the unbiased batch variance (`layers.TorchBatchNorm`). The code deep-copies one
initialised branch per phrase (and one non-local block); here every copy draws its own
initial weights. `lgi_import.py` loads the authors' weights.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from sscs_tf.data import preprocess
from sscs_tf.models import heads, layers
from sscs_tf.models.baseline import Baseline
from sscs_tf.scoring import losses, metrics

OUTPUT_ACTIVATIONS = ("relu", "sigmoid")


def torch_embedding_init() -> keras.initializers.Initializer:
  """N(0, 1), PyTorch's `nn.Embedding` default, kept by the reference for words and positions."""
  return keras.initializers.RandomNormal(stddev=1.0)


def _take_steps(x, index):
  """`x[b, index[b, t]]` for `x [B, L, C]`, `index [B, L]`."""
  return ops.take_along_axis(x, index[:, :, None], axis=1)


@keras.saving.register_keras_serializable(package="sscs_tf")
class QueryEncoder(keras.layers.Layer):
  """Word embedding -> stacked bidirectional LSTM over the real words only.

  The backward direction reads each sentence reversed within its length (padding stays at
  the end), which is what PyTorch's packed sequences compute.

  Args:
    vocab_size, embedding_dim: the learned embedding table.
    units: U per direction.
    num_layers: stacked BiLSTM layers.
    dropout: rate on the outputs of every layer but the last (nn.LSTM's `dropout`).
  Call: word_ids `[B, L]` int, num_words `[B]` int -> (word_features `[B, L, 2U]`, zero past
    num_words; sentence_feature `[B, 2U]` = [forward state at the last word ; backward state
    at word 0]; word_mask `[B, L]` bool).
  """

  def __init__(self, vocab_size: int, embedding_dim: int, units: int, num_layers: int,
               dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.embedding_dim = embedding_dim
    self.units = units
    self.num_layers = num_layers
    self.dropout = dropout

  def build(self, input_shape=None):
    self.embedding = keras.layers.Embedding(self.vocab_size, self.embedding_dim,
                                            embeddings_initializer=torch_embedding_init(),
                                            name="embedding")
    self.embedding.build((None, None))
    self.lstms = []
    width = self.embedding_dim
    for k in range(self.num_layers):
      pair = []
      for direction in ("forward", "backward"):
        lstm = keras.layers.RNN(layers.TwoBiasLSTMCell(self.units, name="cell"),
                                return_sequences=True, name=f"{direction}_{k}")
        lstm.build((None, None, width))
        pair.append(lstm)
      self.lstms.append(pair)
      width = 2 * self.units
    self.dropout_layer = keras.layers.Dropout(self.dropout)

  def call(self, word_ids, num_words, training=False):
    num_words = ops.cast(num_words, "int32")
    positions = ops.arange(ops.shape(word_ids)[1], dtype="int32")[None, :]
    word_mask = positions < num_words[:, None]
    reverse = ops.where(word_mask, num_words[:, None] - 1 - positions, positions)
    x = self.embedding(word_ids)
    keep = ops.cast(word_mask, x.dtype)[:, :, None]
    for k, (forward, backward) in enumerate(self.lstms):
      if k:
        x = self.dropout_layer(x, training=training)
      backward_out = _take_steps(backward(_take_steps(x, reverse)), reverse)
      x = ops.concatenate([forward(x), backward_out], axis=-1) * keep
    last = ops.maximum(num_words - 1, 0)[:, None]
    sentence = ops.concatenate([_take_steps(x[:, :, :self.units], last)[:, 0],
                                x[:, 0, self.units:]], axis=-1)
    return x, sentence, word_mask

  def get_config(self):
    return {**super().get_config(), "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim, "units": self.units,
            "num_layers": self.num_layers, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="sscs_tf")
class SequentialQueryAttention(keras.layers.Layer):
  """N phrase features, each an attention over the words guided by the previous one.

  Args:
    num_phrases: N.
    hidden_size: H, the width of the words and the sentence.
    attention_size: A of the attention MLP.
  Call: sentence `[B, H]`, words `[B, L, H]`, word_mask `[B, L]` -> (phrases `[B, N, H]`,
    attention `[B, N, L]` float32, zero at padded words).
  """

  def __init__(self, num_phrases: int, hidden_size: int, attention_size: int, **kwargs):
    super().__init__(**kwargs)
    self.num_phrases = num_phrases
    self.hidden_size = hidden_size
    self.attention_size = attention_size

  def build(self, input_shape=None):
    h, a = self.hidden_size, self.attention_size
    self.phrase_queries = [layers.dense(h, h, name=f"query_{n}") for n in range(self.num_phrases)]
    self.guide = layers.dense(h, 2 * h, name="guide")
    self.word_key = layers.dense(a, h, name="word_key")
    self.guide_key = layers.dense(a, h, name="guide_key")
    self.score = layers.dense(1, a, name="score")
    for layer in self.phrase_queries + [self.word_key, self.guide_key]:
      layer.build((None, h))
    self.guide.build((None, 2 * h))
    self.score.build((None, a))

  def call(self, sentence, words, word_mask):
    word_keys = self.word_key(words)
    phrase = ops.zeros_like(sentence)  # e_0 = 0
    phrases, attentions = [], []
    for query in self.phrase_queries:
      guide = ops.relu(self.guide(ops.concatenate([query(sentence), phrase], axis=-1)))  # Eq. 4
      logits = self.score(ops.tanh(word_keys + self.guide_key(guide)[:, None, :]))  # Eq. 5
      attention = layers.masked_softmax(ops.squeeze(logits, -1), word_mask)  # Eq. 6
      phrase = ops.einsum("bl,blh->bh", ops.cast(attention, words.dtype), words)  # Eq. 7
      phrases.append(phrase)
      attentions.append(attention)
    return ops.stack(phrases, axis=1), ops.stack(attentions, axis=1)

  def get_config(self):
    return {**super().get_config(), "num_phrases": self.num_phrases,
            "hidden_size": self.hidden_size, "attention_size": self.attention_size}


@keras.saving.register_keras_serializable(package="sscs_tf")
class VideoEncoder(keras.layers.Layer):
  """relu(Dense(v)) and a learned position embedding, each dropped out and masked, summed.

  Args:
    hidden_size: H.
    num_segments: S, rows of the position embedding and steps of the input.
    dropout: rate on both terms.
  Call: features `[B, S, D]`, mask `[B, S]` -> `[B, S, H]`, zero at padded segments.
  """

  def __init__(self, hidden_size: int, num_segments: int, dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.num_segments = num_segments
    self.dropout = dropout

  def _check_steps(self, steps):
    if steps is not None and steps != self.num_segments:
      raise ValueError(f"features have {steps} steps; the model expects num_segments = "
                       f"{self.num_segments}.")

  def build(self, input_shape):
    self._check_steps(input_shape[-2])
    self.projection = layers.dense(self.hidden_size, input_shape[-1], name="projection")
    self.projection.build((None, None, input_shape[-1]))
    self.positions = self.add_weight(shape=(self.num_segments, self.hidden_size),
                                     initializer=torch_embedding_init(), name="positions")
    self.dropout_layer = keras.layers.Dropout(self.dropout)

  def call(self, features, mask, training=False):
    self._check_steps(features.shape[-2])
    x = self.dropout_layer(ops.relu(self.projection(features)), training=training)
    mask = ops.cast(mask, x.dtype)[:, :, None]
    # One dropout mask for the whole batch, as the reference drops out before broadcasting.
    positions = ops.relu(ops.cast(self.positions, x.dtype))[None]
    return x * mask + self.dropout_layer(positions, training=training) * mask

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_segments": self.num_segments, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="sscs_tf")
class PhraseLocalContext(keras.layers.Layer):
  """One phrase's branch: segment-level fusion (Eq. 8), then local context (Eq. 9).

  m = relu(W_m (relu(W_v v) * relu(W_e e))); out = relu(m + BN(Conv(relu(BN(Conv(m)))))),
  the convolutions without bias, "same" padding (PyTorch's K // 2 for odd K).

  Args:
    hidden_size: H.
    kernel_size: K, odd.
  Call: video `[B, T, H]`, phrase `[B, H]` -> `[B, T, H]`.
  """

  def __init__(self, hidden_size: int, kernel_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.kernel_size = kernel_size

  def build(self, input_shape=None):
    h, k = self.hidden_size, self.kernel_size
    self.fusion = [layers.dense(h, h, name=name) for name in ("video", "phrase", "fused")]
    for layer in self.fusion:
      layer.build((None, h))
    self.convs = [keras.layers.Conv1D(h, k, padding="same", use_bias=False,
                                      kernel_initializer=layers.torch_uniform(h * k),
                                      name=f"conv_{j}") for j in range(2)]
    self.norms = [layers.TorchBatchNorm(name=f"norm_{j}") for j in range(2)]
    for layer in self.convs + self.norms:
      layer.build((None, None, h))

  def fuse(self, video, phrase):
    """m `[B, T, H]` (Eq. 8)."""
    to_video, to_phrase, to_fused = self.fusion
    return ops.relu(to_fused(ops.relu(to_video(video)) * ops.relu(to_phrase(phrase))[:, None]))

  def local_residual(self, m, training=False):
    """BN(Conv(relu(BN(Conv(m))))), the residual branch of Eq. 9, before the sum."""
    y = ops.relu(self.norms[0](self.convs[0](m), training=training))
    return self.norms[1](self.convs[1](y), training=training)

  def call(self, video, phrase, training=False):
    m = self.fuse(video, phrase)
    return ops.relu(m + self.local_residual(m, training=training))

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="sscs_tf")
class NonLocalBlock(keras.layers.Layer):
  """Global context (Eq. 12): x + multi-head attention over the valid segments.

  Per head, softmax_j(k_i . q_j / sqrt(H / heads)) weights v_j, with k = W_k x and
  [q, v] = W_qv x; no output projection and no normalisation, as in the reference.

  Args:
    hidden_size: H, divisible by num_heads.
    num_heads: heads, each a contiguous slice of H / num_heads channels.
  Call: x `[B, T, H]`, mask `[B, T]` -> `[B, T, H]`; with return_attention also the weights
    `[B, heads, T, T]` float32 (row i the output segment, column j the attended one).
  """

  def __init__(self, hidden_size: int, num_heads: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.num_heads = num_heads

  def build(self, input_shape=None):
    h = self.hidden_size
    self.key = layers.dense(h, h, name="key")
    self.query_value = layers.dense(2 * h, h, name="query_value")
    for layer in (self.key, self.query_value):
      layer.build((None, h))

  def call(self, x, mask, return_attention=False):
    batch, steps = ops.shape(x)[0], ops.shape(x)[1]
    heads, depth = self.num_heads, self.hidden_size // self.num_heads
    split = lambda y: ops.reshape(y, (batch, steps, heads, depth))
    query, value = ops.split(self.query_value(x), 2, axis=-1)
    key, query, value = split(self.key(x)), split(query), split(value)
    logits = ops.einsum("bihd,bjhd->bhij", key, query) / (depth ** 0.5)
    weights = layers.masked_softmax(logits, ops.cast(mask, "float32")[:, None, None, :])
    relation = ops.einsum("bhij,bjhd->bihd", ops.cast(weights, x.dtype), value)
    out = x + ops.reshape(relation, (batch, steps, self.hidden_size))
    return (out, weights) if return_attention else out

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="sscs_tf")
class LGI(keras.Model):
  """Local-Global video-text Interactions; the constructor arguments are `config.model`.

  Args:
    feature_dim: D of the segment features.
    vocab_size: rows of the learned word embedding.
    embedding_dim: word vector width (300).
    hidden_size: H of video, query and fused features (512); the BiLSTM has H / 2 units per
      direction and the attention MLPs H / 2 hidden units (256 in the reference).
    num_segments: S, picked segments per video (128).
    num_phrases: N of the sequential query attention; 1 uses the sentence feature.
    num_nonlocal_blocks, num_heads: the global context.
    local_kernel_size: K of the local residual block (15).
    dropout: rate of the video encoder and between the LSTM layers (0.5).
    output_activation: "relu" or "sigmoid" on (t_s, t_e).
    max_query_length: words kept by the input pipeline (informational here).
  Call: inputs {"features": [B, S, D] float, "feature_mask": [B, S] float, "word_ids": [B, L]
    int (0 = padding), "num_words": [B] int} -> {"times": [B, 2] (t_s, t_e) as fractions of
    the duration, "temporal_attention": [B, S] o, "phrase_attention": [B, N, L] (zeros when
    N = 1), "clip_features": [B, S, H] the video encoder output, "clip_mask": [B, S],
    "sentence_feature": [B, H]}, all float32; with return_intermediates also "phrases"
    [B, N, H], "phrase_weights" [B, N], "local_features" [B, N, S, H] and "global_features"
    [B, S, H] (after the non-local blocks).
  """

  def __init__(self, *, feature_dim: int, vocab_size: int, embedding_dim: int = 300,
               hidden_size: int = 512, num_segments: int = 128, num_phrases: int = 3,
               num_nonlocal_blocks: int = 2, num_heads: int = 4, local_kernel_size: int = 15,
               dropout: float = 0.5, output_activation: str = "relu", max_query_length: int = 0,
               **kwargs):
    super().__init__(**kwargs)
    self.feature_dim = feature_dim
    self.vocab_size = vocab_size
    self.embedding_dim = embedding_dim
    self.hidden_size = hidden_size
    self.num_segments = num_segments
    self.num_phrases = num_phrases
    self.num_nonlocal_blocks = num_nonlocal_blocks
    self.num_heads = num_heads
    self.local_kernel_size = local_kernel_size
    self.dropout = dropout
    self.output_activation = output_activation
    self.max_query_length = max_query_length
    self._validate()
    # Every shape follows from the arguments: the weights exist right away (to count them).
    self.build()

  def _validate(self):
    if self.output_activation not in OUTPUT_ACTIVATIONS:
      raise ValueError(f"model.output_activation must be one of {OUTPUT_ACTIVATIONS}, got "
                       f"{self.output_activation!r}.")
    if self.num_heads < 1:
      raise ValueError(f"model.num_heads must be >= 1, got {self.num_heads}.")
    if self.hidden_size % 2 or self.hidden_size % self.num_heads:
      raise ValueError(f"model.hidden_size={self.hidden_size} must be even and divisible by "
                       f"model.num_heads={self.num_heads}.")
    if self.local_kernel_size % 2 != 1:
      raise ValueError(f"model.local_kernel_size must be odd, got {self.local_kernel_size}.")
    if self.num_phrases < 1:
      raise ValueError(f"model.num_phrases must be >= 1, got {self.num_phrases}.")

  def build(self, input_shape=None):
    if self.built:
      return
    h, half = self.hidden_size, self.hidden_size // 2
    self.query_encoder = QueryEncoder(self.vocab_size, self.embedding_dim, half, 2,
                                      self.dropout, name="query_encoder")
    self.query_encoder.build()
    self.video_encoder = VideoEncoder(h, self.num_segments, self.dropout, name="video_encoder")
    self.video_encoder.build((None, self.num_segments, self.feature_dim))
    self.query_attention = None
    if self.num_phrases > 1:
      self.query_attention = SequentialQueryAttention(self.num_phrases, h, half,
                                                      name="query_attention")
      self.query_attention.build()
    self.phrase_branches = [PhraseLocalContext(h, self.local_kernel_size, name=f"phrase_{n}")
                            for n in range(self.num_phrases)]
    self.phrase_pooling = layers.AttentionWeights(h, half, name="phrase_pooling")
    self.nonlocal_blocks = [NonLocalBlock(h, self.num_heads, name=f"nonlocal_{k}")
                            for k in range(self.num_nonlocal_blocks)]
    self.temporal_attention = layers.AttentionWeights(h, half, name="temporal_attention")
    for layer in self.phrase_branches + self.nonlocal_blocks + [self.phrase_pooling,
                                                                 self.temporal_attention]:
      layer.build()
    # Eq. 15; the times stay float32 under mixed precision: the losses and metrics read them.
    self.regression = [layers.dense(h, h, name="regression_embed"),
                       layers.dense(h, h, name="regression_hidden"),
                       layers.dense(2, h, dtype="float32", name="regression_times")]
    for layer in self.regression:
      layer.build((None, h))

  def _regress(self, x, clip_mask):
    """Temporal attention o over the valid segments (Eq. 13), pooling (Eq. 14), MLP (Eq. 15).
    A relu output (Charades) lets normalised targets exceed 1, as the reference's do."""
    attention = self.temporal_attention(x, clip_mask)
    embed, hidden, to_times = self.regression
    pooled = layers.attentive_pool(attention, x)
    times = to_times(ops.relu(hidden(embed(pooled))))
    return (ops.relu(times) if self.output_activation == "relu" else ops.sigmoid(times)), attention

  def _phrases(self, words, sentence, word_mask):
    if self.query_attention is not None:
      return self.query_attention(sentence, words, word_mask)
    # N = 1: the sentence is the only phrase and no attention over words is computed.
    return sentence[:, None, :], ops.zeros_like(ops.cast(word_mask, "float32"))[:, None, :]

  def call(self, inputs, training=False, return_intermediates=False):
    clip_mask = ops.cast(inputs["feature_mask"], "float32")
    clip_features = self.video_encoder(inputs["features"], clip_mask, training=training)
    words, sentence, word_mask = self.query_encoder(inputs["word_ids"], inputs["num_words"],
                                                    training=training)
    phrases, phrase_attention = self._phrases(words, sentence, word_mask)
    local = ops.stack([branch(clip_features, phrases[:, n], training=training)
                       for n, branch in enumerate(self.phrase_branches)], axis=1)
    phrase_weights = self.phrase_pooling(phrases)  # Eq. 11: from e_n, softmax over phrases
    x = ops.einsum("bn,bnth->bth", ops.cast(phrase_weights, local.dtype), local)
    for block in self.nonlocal_blocks:
      x = block(x, clip_mask)
    times, temporal_attention = self._regress(x, clip_mask)
    outputs = {"times": times, "temporal_attention": temporal_attention,
               "phrase_attention": phrase_attention, "clip_features": clip_features,
               "clip_mask": clip_mask, "sentence_feature": sentence}
    if return_intermediates:
      outputs.update(phrases=phrases, phrase_weights=phrase_weights, local_features=local,
                     global_features=x)
    return {k: ops.cast(v, "float32") for k, v in outputs.items()}

  def get_config(self):
    config = super().get_config()
    config.update(
        feature_dim=self.feature_dim, vocab_size=self.vocab_size,
        embedding_dim=self.embedding_dim, hidden_size=self.hidden_size,
        num_segments=self.num_segments, num_phrases=self.num_phrases,
        num_nonlocal_blocks=self.num_nonlocal_blocks, num_heads=self.num_heads,
        local_kernel_size=self.local_kernel_size, dropout=self.dropout,
        output_activation=self.output_activation, max_query_length=self.max_query_length)
    return config


def grounding_loss(outputs, batch, loss_config):
  """LGI's three terms per example (reference weights in the config): regression on the
  normalised boundaries, temporal attention guidance, distinct query attention."""
  duration = tf.cast(batch["duration"], tf.float32)
  targets = tf.stack([batch["start"], batch["end"]], axis=1) / duration[:, None]
  return {
      "regression": loss_config.regression_weight * losses.lgi_regression_loss_per_example(
          outputs["times"], targets),
      "attention_guidance": loss_config.attention_guidance_weight
                            * losses.lgi_attention_guidance_loss_per_example(
                                outputs["temporal_attention"], batch["gt_segment_mask"]),
      "distinct_query": loss_config.distinct_query_weight
                        * losses.lgi_distinct_query_loss_per_example(
                            outputs["phrase_attention"], loss_config.dqa_lambda),
  }


def targets(batch, data_config):
  """The temporal attention target `gt_segment_mask [B, S]`: 1 on the segments inside the
  ground truth, over the video's valid segments (those of `feature_mask`)."""
  num_valid = tf.cast(tf.reduce_sum(batch["feature_mask"], axis=1), tf.int32)
  return {"gt_segment_mask": preprocess.lgi_gt_mask(
      batch["start"], batch["end"], batch["duration"], num_valid, data_config.num_segments)}


class Scorer:
  """LGI: the regressed (t_s, t_e) fractions times the duration; R@1 with IoU >= m."""

  TOP1_METRIC, STRICT = "R1@0.5", False

  def __init__(self, eval_config):
    self.thresholds = tuple(eval_config.iou_thresholds)
    self._pred, self._gt, self._ids, self._durations = [], [], [], []

  @staticmethod
  def outputs_to_numpy(outputs):
    return {"times": tf.cast(outputs["times"], tf.float32)}

  def update(self, out, batch):
    self._pred.append(out["times"] * batch["duration"][:, None])
    self._gt.append(np.stack([batch["start"], batch["end"]], axis=1))
    self._durations.append(batch["duration"])
    self._ids.extend(batch["query_id"])

  def result(self):
    return metrics.r_at_1(np.concatenate(self._pred), np.concatenate(self._gt),
                          self.thresholds)

  def per_query(self):
    pred, gt = np.concatenate(self._pred), np.concatenate(self._gt)
    ious = metrics.span_iou(pred, gt)
    durations = np.concatenate(self._durations)
    return [dict(query_id=qid, duration=float(durations[i]), gt=gt[i].tolist(),
                 segments=[pred[i].tolist()], ious=[float(ious[i])])
            for i, qid in enumerate(self._ids)]


BASELINE = Baseline(
    name="lgi", model=LGI, grounding_loss=grounding_loss,
    loss_terms=("regression", "attention_guidance", "distinct_query"),
    clip_count_field="num_segments", scorer=Scorer,
    serving_head=lambda config: heads.SegmentHead(), targets=targets,
    local_run=dict(embedding_dim=32), demo_config="configs.lgi_demo")


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
import tensorflow as tf
from keras import ops

from sscs_tf.data import preprocess
from sscs_tf.models import heads, layers, lgi_layers
from sscs_tf.models.baseline import Baseline
from sscs_tf.scoring import losses

OUTPUT_ACTIVATIONS = ("relu", "sigmoid")


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
    self.query_encoder = lgi_layers.QueryEncoder(self.vocab_size, self.embedding_dim, half, 2,
                                                 self.dropout, name="query_encoder")
    self.query_encoder.build()
    self.video_encoder = lgi_layers.VideoEncoder(h, self.num_segments, self.dropout,
                                                 name="video_encoder")
    self.video_encoder.build((None, self.num_segments, self.feature_dim))
    self.query_attention = None
    if self.num_phrases > 1:
      self.query_attention = lgi_layers.SequentialQueryAttention(self.num_phrases, h, half,
                                                                 name="query_attention")
      self.query_attention.build()
    self.phrase_branches = [
        lgi_layers.PhraseLocalContext(h, self.local_kernel_size, name=f"phrase_{n}")
        for n in range(self.num_phrases)]
    self.phrase_pooling = layers.AttentionWeights(h, half, name="phrase_pooling")
    self.nonlocal_blocks = [lgi_layers.NonLocalBlock(h, self.num_heads, name=f"nonlocal_{k}")
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


class Scorer(heads.OneSegmentScorer):
  """LGI: the regressed (t_s, t_e) fractions times the duration; R@1 with IoU >= m."""

  @staticmethod
  def outputs_to_numpy(outputs):
    return {"times": tf.cast(outputs["times"], tf.float32)}

  def predicted_seconds(self, out, batch):
    return out["times"] * batch["duration"][:, None]


BASELINE = Baseline(
    name="lgi", model=LGI, grounding_loss=grounding_loss,
    loss_terms=("regression", "attention_guidance", "distinct_query"),
    clip_count_field="num_segments", scorer=Scorer,
    serving_head=lambda config: heads.SegmentHead(), targets=targets,
    local_run=dict(embedding_dim=32), demo_config="configs.lgi_demo")


"""VSLNet (Zhang, Sun, Jing, Zhou, ACL 2020) as the authors' code computes it (26hzhang/VSLNet,
TensorFlow 1: model/VSLNet.py, model/layers.py), channels-last.

video rows -> Dense(H) ; words (+ character CNN) -> Dense(H); one shared feature encoder on
both; context-query attention; the attentively pooled query concatenated to every step;
query-guided highlighting (steps scaled by sigmoid scores); the conditioned span predictor's
start and end logits. See docs/models.md (VSLNet).

Padding: as the authors' loader pads a batch to its longest video and longest query, the
model first cuts its inputs to the batch's longest valid prefix (`feature_mask`, and words
with id 0 as padding), computes there, and pads the per-step outputs back to the input's S
(logits with -1e30, features with zeros). The convolutions read the padded steps within the
batch's longest video, as the authors' do, so a batch gives their numbers whatever S is.

For the Sscs branch: `clip_features` are the video after the shared feature encoder (before
any interaction with the query), `clip_mask` the valid steps, and `sentence_feature` the
query as VSLNet itself pools it (`QueryPoolingConcat`: a softmax over the encoded words),
the one sentence-level vector the model computes (docs/models.md, "VSLNet with Sscs").
"""

import os

import keras
import tensorflow as tf
from keras import ops

from sscs_tf.data import text

from sscs_tf.models import contract, heads
from sscs_tf.models import vslnet_layers as vl
from sscs_tf.models import vslnet_spans
from sscs_tf.models.baseline import Baseline
from sscs_tf.models.tan_layers import load_embedding_matrix

# Per-step outputs, padded back to the input's S.
_STEP_OUTPUTS = ("start_logits", "end_logits", "highlight_logits", "clip_features")


@keras.saving.register_keras_serializable(package="sscs_tf")
class VSLNet(keras.Model):
  """Span-based localizing network; the constructor arguments are `config.model`.

  Args:
    feature_dim: D of the video rows (1024, I3D).
    vocab_size: rows of the word table (ids 0 = padding, 1 = unknown).
    embedding_dim: word vector width (300, GloVe).
    embeddings_file: `.npy` `[vocab_size, embedding_dim]`: frozen vectors (the authors'
      GloVe table); rows 0 and 1 are replaced by zeros and the learned unknown-word vector.
      Empty: the whole table is learned.
    char_vocab_size: the authors' `char_size`; 0 leaves out the character CNN.
    vocab_file: the data's vocab.txt, whose words give each word id its characters
      (`vslnet_layers.word_char_table`, a non-trainable table the checkpoint and the export
      hold); empty: the inputs carry `char_ids [B, L, C]` (as the authors' loader builds
      them) when the character CNN is on.
    char_dim: character vector width (50).
    hidden_size: H (128).
    num_heads: attention heads of the feature encoder (8).
    max_position_length: steps of the position table, the most video steps or words (128).
    dropout: the authors' drop_rate (0.2).
    predictor: "rnn" (their default) or "transformer".
  Call: inputs {"features": [B, S, D], "feature_mask": [B, S], "word_ids": [B, L],
    "num_words": [B]} (+ "char_ids") -> {"start_logits", "end_logits", "highlight_logits":
    [B, S] masked with -1e30, "clip_features": [B, S, H], "clip_mask": [B, S],
    "sentence_feature": [B, H], "regularized_square_sum": [B] (the same value on every row:
    the sum of squares of the weights the authors regularise)}, all float32; with
    return_intermediates also the authors' intermediate tensors over the cut length.
  """

  def __init__(self, *, feature_dim: int, vocab_size: int, embedding_dim: int = 300,
               embeddings_file: str = "", char_vocab_size: int = 0, vocab_file: str = "",
               char_dim: int = 50,
               hidden_size: int = 128, num_heads: int = 8, max_position_length: int = 128,
               dropout: float = 0.2, predictor: str = "rnn", **kwargs):
    super().__init__(**kwargs)
    self.feature_dim = feature_dim
    self.vocab_size = vocab_size
    self.embedding_dim = embedding_dim
    self.embeddings_file = embeddings_file
    self.char_vocab_size = char_vocab_size
    self.vocab_file = vocab_file
    self.char_dim = char_dim
    self.hidden_size = hidden_size
    self.num_heads = num_heads
    self.max_position_length = max_position_length
    self.dropout = dropout
    self.predictor = predictor
    if char_vocab_size == 1 or char_vocab_size < 0:
      raise ValueError(f"model.char_vocab_size must be 0 (no character CNN) or >= 2, got "
                       f"{char_vocab_size}.")
    self.build()

  def build(self, input_shape=None):
    if self.built:
      return
    h = self.hidden_size
    frozen = bool(self.embeddings_file)
    self.word_table = self.add_weight(shape=(self.vocab_size, self.embedding_dim),
                                      initializer="glorot_uniform", trainable=not frozen,
                                      name="word_table")
    if frozen:
      self.word_table.assign(load_embedding_matrix(self.embeddings_file, self.vocab_size,
                                                   self.embedding_dim))
    self.unk = self.add_weight(shape=(1, self.embedding_dim), initializer="glorot_uniform",
                               name="unk")
    self.char_cnn = self.word_chars = None
    word_width = self.embedding_dim
    if self.char_vocab_size:
      self.char_cnn = vl.CharCNN(self.char_vocab_size, self.char_dim, self.dropout,
                                 name="char_cnn")
      self.char_cnn.build()
      word_width += sum(vl.CHAR_FILTERS)
      if self.vocab_file:
        self._build_word_chars()
    self.drop = keras.layers.Dropout(self.dropout)
    self.video_projection = keras.layers.Dense(h, name="video_projection")
    self.video_projection.build((None, None, self.feature_dim))
    self.query_projection = keras.layers.Dense(h, name="query_projection")
    self.query_projection.build((None, None, word_width))
    self.encoder = vl.FeatureEncoder(h, self.num_heads, self.max_position_length,
                                     self.dropout, name="feature_encoder")
    self.attention = vl.ContextQueryAttention(h, self.dropout, name="context_query_attention")
    self.concat = vl.QueryPoolingConcat(h, name="query_pooling_concat")
    self.highlighter = vl.Highlighter(h, name="highlighter")
    self.span_predictor = vl.ConditionedSpanPredictor(
        h, self.predictor, self.num_heads, self.max_position_length, self.dropout,
        name="span_predictor")
    for layer in (self.encoder, self.attention, self.concat, self.highlighter,
                  self.span_predictor):
      layer.build()

  def _build_word_chars(self):
    if not os.path.isfile(self.vocab_file):
      raise FileNotFoundError(f"model.vocab_file {self.vocab_file!r} does not exist.")
    tokens = text.Vocabulary.load(self.vocab_file).tokens
    if len(tokens) != self.vocab_size:
      raise ValueError(f"model.vocab_file {self.vocab_file!r} has {len(tokens)} words; "
                       f"model.vocab_size is {self.vocab_size}.")
    table = vl.word_char_table(tokens, self.char_vocab_size, len(text.RESERVED_TOKENS))
    self.word_chars = self.add_weight(shape=table.shape, dtype="int32", trainable=False,
                                      initializer="zeros", name="word_chars")
    self.word_chars.assign(table)

  def regularized_weights(self):
    """The weights the authors give their L2 regulariser (model/ops.py `regularizer`)."""
    own = [self.video_projection.kernel, self.video_projection.bias,
           self.query_projection.kernel, self.query_projection.bias]
    layers = [self.encoder, self.attention, self.concat, self.highlighter, self.span_predictor]
    if self.char_cnn is not None:
      layers.append(self.char_cnn)
    return own + [w for layer in layers for w in layer.regularized_weights()]

  def batch_statistics(self, inputs):
    """What the batch's numbers depend on beyond each example (models/contract.py): the
    longest video, query and word it is cut to, and the valid steps and examples the
    highlighting loss divides by."""
    mask = ops.cast(inputs["feature_mask"], "float32")
    words = ops.sum(ops.cast(ops.not_equal(inputs["word_ids"], 0), "int32"), axis=1)
    statistics = {"video_steps": (ops.max(ops.sum(mask, axis=1)), "max"),
                  "words": (ops.max(words), "max"),
                  "valid_steps": (ops.sum(mask), "sum"),
                  "examples": (tf.shape(mask)[0], "sum")}
    char_ids = self._char_ids(inputs["word_ids"], inputs.get("char_ids"))
    if char_ids is not None:
      statistics["word_chars"] = (vl.longest_word(char_ids), "max")
    return statistics

  def _char_ids(self, word_ids, char_ids):
    if self.char_cnn is None:
      return None
    if char_ids is None and self.word_chars is not None:
      char_ids = ops.take(self.word_chars, ops.cast(word_ids, "int32"), axis=0)
    if char_ids is None:
      raise ValueError("model.char_vocab_size is set without model.vocab_file, so the inputs "
                       "need char_ids [B, L, C].")
    return char_ids

  def embed_words(self, word_ids, char_ids=None, training=False, longest_word=None):
    """Word vectors (padding zero, unknown words the learned vector) [+ character CNN]."""
    word_ids = ops.cast(word_ids, "int32")
    words = ops.take(self.word_table, word_ids, axis=0)
    words = ops.where(ops.equal(word_ids, 1)[..., None], self.unk[None], words)
    words = words * ops.cast(ops.not_equal(word_ids, 0), words.dtype)[..., None]
    words = self.drop(words, training=training)
    if self.char_cnn is None:
      return words
    char_ids = vl.cut_to_longest_word(self._char_ids(word_ids, char_ids), longest_word)
    return ops.concatenate([words, ops.cast(self.char_cnn(char_ids, training=training),
                                            words.dtype)], axis=-1)

  def call(self, inputs, training=False, return_intermediates=False):
    full_mask = ops.cast(inputs["feature_mask"], "float32")
    steps = ops.shape(full_mask)[1]
    # Cut to the batch's longest video and query: the global batch's on several replicas.
    video_length = ops.cast(contract.global_statistic(
        inputs, "video_steps", ops.max(ops.sum(full_mask, axis=1))), "int32")
    query_mask_full = ops.cast(ops.not_equal(inputs["word_ids"], 0), "float32")
    query_length = ops.cast(contract.global_statistic(
        inputs, "words", ops.max(ops.sum(query_mask_full, axis=1))), "int32")
    video_mask = full_mask[:, :video_length]
    query_mask = vl.fit_axis(query_mask_full, query_length, axis=1)
    char_ids = inputs.get("char_ids")
    longest = inputs.get(contract.GLOBAL_PREFIX + "word_chars")
    words = self.embed_words(vl.fit_axis(inputs["word_ids"], query_length, axis=1),
                             None if char_ids is None else vl.fit_axis(char_ids, query_length,
                                                                      axis=1),
                             training=training,
                             longest_word=None if longest is None else ops.cast(longest,
                                                                                "int32"))
    video = self.drop(inputs["features"][:, :video_length], training=training)
    got = {"video_projected": self.video_projection(video),
           "query_projected": self.query_projection(words)}
    got["video_encoded"] = self.encoder(got["video_projected"], video_mask, training=training)
    got["query_encoded"] = self.encoder(got["query_projected"], query_mask, training=training)
    got["attention_fused"], got["similarity"] = self.attention(
        got["video_encoded"], got["query_encoded"], video_mask, query_mask, training=training)
    got["concatenated"], pooled = self.concat(got["attention_fused"], got["query_encoded"],
                                              query_mask)
    highlight_logits = self.highlighter(got["concatenated"], video_mask)
    got["highlighted"] = got["concatenated"] * ops.cast(
        ops.sigmoid(highlight_logits), got["concatenated"].dtype)[..., None]
    start_logits, end_logits = self.span_predictor(got["highlighted"], video_mask,
                                                   training=training)
    cut = {"start_logits": start_logits, "end_logits": end_logits,
           "highlight_logits": highlight_logits, "clip_features": got["video_encoded"]}
    outputs = {k: tf.ensure_shape(_pad_steps(ops.cast(cut[k], "float32"), steps, k),
                                  full_mask.shape[:2] + cut[k].shape[2:])
               for k in _STEP_OUTPUTS}
    square_sum = ops.sum(ops.stack([ops.sum(ops.square(ops.cast(w, "float32")))
                                    for w in self.regularized_weights()]))
    outputs.update(clip_mask=full_mask, sentence_feature=ops.cast(pooled, "float32"),
                   regularized_square_sum=ops.broadcast_to(square_sum,
                                                           ops.shape(full_mask)[:1]))
    if return_intermediates:
      outputs.update({k: ops.cast(v, "float32") for k, v in got.items()},
                     words=ops.cast(words, "float32"))
    return outputs

  def get_config(self):
    config = super().get_config()
    config.update(
        feature_dim=self.feature_dim, vocab_size=self.vocab_size,
        embedding_dim=self.embedding_dim, embeddings_file=self.embeddings_file,
        char_vocab_size=self.char_vocab_size, vocab_file=self.vocab_file,
        char_dim=self.char_dim,
        hidden_size=self.hidden_size, num_heads=self.num_heads,
        max_position_length=self.max_position_length, dropout=self.dropout,
        predictor=self.predictor)
    return config


def _pad_steps(x, steps, name):
  """`x [B, T, ...]` padded on axis 1 to `steps`: -1e30 for logits, 0 for features."""
  pad = [[0, 0], [0, steps - ops.shape(x)[1]]] + [[0, 0]] * (len(x.shape) - 2)
  return ops.pad(x, pad, constant_values=vl.MASK_VALUE if name.endswith("logits") else 0.0)


def span_cross_entropy_per_example(start_logits, end_logits, start_index, end_index):
  """The authors' `localization_loss` per example: softmax cross-entropy of the start and of
  the end logits against the one-hot target steps, summed (their loss is the batch mean)."""
  def one(logits, index):
    logits = tf.cast(logits, tf.float32)
    target = tf.gather(logits, tf.cast(index, tf.int32), axis=1, batch_dims=1)
    return tf.reduce_logsumexp(logits, axis=1) - target
  return one(start_logits, start_index) + one(end_logits, end_index)


def highlight_loss_per_example(logits, labels, mask, epsilon=1e-12, valid_steps=None,
                               examples=None):
  """The authors' `highlight_layer` loss as per-example shares: sigmoid cross-entropy per
  step, weight 2 inside the (extended) ground truth and 1 outside, summed over the valid
  steps of the batch and divided by their count. Example b's share is B times its own sum
  over that count, so the shares' mean is the authors' batch value exactly. On several
  replicas `valid_steps` and `examples` are the global batch's (models/contract.py)."""
  logits = tf.cast(logits, tf.float32)
  labels, mask = tf.cast(labels, tf.float32), tf.cast(mask, tf.float32)
  weights = tf.where(tf.equal(labels, 0.0), labels + 1.0, labels * 2.0)
  per_step = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits) * weights
  batch = tf.cast(tf.shape(logits)[0], tf.float32) if examples is None else examples
  count = tf.reduce_sum(mask) if valid_steps is None else valid_steps
  return tf.reduce_sum(per_step * mask, axis=1) * batch / (count + epsilon)


def grounding_loss(outputs, batch, loss_config):
  """VSLNet's total loss per example: span cross-entropy + lambda x highlighting + the L2
  penalty (model/VSLNet.py: loss + l2, total = loss + highlight_lambda * highlight_loss)."""
  return {
      "span": span_cross_entropy_per_example(outputs["start_logits"], outputs["end_logits"],
                                             batch["start_index"], batch["end_index"]),
      "highlight": loss_config.highlight_lambda * highlight_loss_per_example(
          outputs["highlight_logits"], batch["highlight_labels"], outputs["clip_mask"],
          valid_steps=batch.get(contract.GLOBAL_PREFIX + "valid_steps"),
          examples=batch.get(contract.GLOBAL_PREFIX + "examples")),
      "l2": loss_config.l2_weight * outputs["regularized_square_sum"],
  }


def targets(batch, data_config):
  """The start and end steps (the authors' `time_to_index`) and the highlighting labels
  (the ground truth extended by `data_config.highlight_extend` of its length each side)."""
  num_valid = tf.cast(tf.reduce_sum(batch["feature_mask"], axis=1), tf.int32)
  start, end = vslnet_spans.time_to_index(batch["start"], batch["end"], batch["duration"],
                                          num_valid, tf.shape(batch["feature_mask"])[1])
  labels = vslnet_spans.highlight_labels(start, end, num_valid,
                                         tf.shape(batch["feature_mask"])[1],
                                         data_config.highlight_extend)
  return {"start_index": start, "end_index": end, "highlight_labels": labels}


class Scorer(heads.OneSegmentScorer):
  """VSLNet's evaluation (util/runner_utils.py `eval_test`): the decoded steps become seconds
  as `index_to_time` computes them; R@1 with IoU >= m and mIoU (the authors print them x100)."""

  @staticmethod
  def outputs_to_numpy(outputs):
    start, end, _ = vslnet_spans.decode(outputs["start_logits"], outputs["end_logits"])
    num_valid = tf.cast(tf.reduce_sum(outputs["clip_mask"], axis=1), tf.int32)
    return {"start_index": start, "end_index": end, "num_valid": num_valid}

  def predicted_seconds(self, out, batch):
    return vslnet_spans.index_to_time_np(out["start_index"], out["end_index"],
                                         out["num_valid"], batch["duration"])


BASELINE = Baseline(
    name="vslnet", model=VSLNet, grounding_loss=grounding_loss,
    loss_terms=("span", "highlight", "l2"), clip_count_field="max_position_length",
    scorer=Scorer, serving_head=lambda config: vslnet_spans.SpanHead(config.eval.top_k),
    targets=targets, local_run=dict(num_heads=2),
    demo_config="configs.vslnet_demo")

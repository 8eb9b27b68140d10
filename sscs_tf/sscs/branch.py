"""The Sscs branch: a training-only Keras layer added to any grounding model.

It reads the baseline's clip features `F [B, T, H]` (before fusion), their mask, and the
sentence feature `G [B, H]`, and returns per-example losses. Equations refer to the paper;
every choice it leaves open is a constructor argument (docs/sscs.md).

Distribution: negatives come from the global batch. Under a `tf.distribute` strategy with
several replicas the branch all-gathers X, Y and the clip masks; `all_gather` is
differentiable (its gradient all-reduces and slices), so each replica's loss, summed over
replicas, has the gradient of the single-device global-batch loss.
"""

import keras
import tensorflow as tf
from keras import ops

from sscs_tf.sscs.caption import AttentivePooling, CaptionDecoder
from sscs_tf.sscs.functions import SupportFunction
from sscs_tf.models.contract import gt_clip_mask
from sscs_tf.sscs.support import support_mask

# config.sscs.mode: "off" builds no branch; the others are SscsBranch modes.
MODES = ("off", "gtc", "ss")
REDUCTIONS = ("sum", "mean")


def _head(kind, dim, name):
  """Psi / Phi: the projection into the shared space (decision: one Dense; "mlp" adds one
  hidden ReLU layer)."""
  if kind == "linear":
    return keras.layers.Dense(dim, name=name, dtype="float32")
  if kind == "mlp":
    return keras.Sequential([keras.layers.Dense(dim, activation="relu", dtype="float32"),
                             keras.layers.Dense(dim, dtype="float32")], name=name)
  raise ValueError(f"Unknown projection head {kind!r}; expected 'linear' or 'mlp'.")


def _unit(x):
  """x / ||x|| over the last axis, as `ops.normalize(x, epsilon=1e-12)` computes it, with a
  finite gradient where x = 0 (a padded clip): the square sum is clamped before the rsqrt,
  where `ops.normalize` clamps after it and its gradient there is 0 * inf."""
  return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-24))


def gather_global_batch(*values):
  """All-gathers along the batch axis in a multi-replica replica context.

  Returns (gathered values, offset of this replica's first example in the global batch).
  """
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return values, 0
  # One all_gather per tensor: the gradient of a single all_gather over a list of tensors
  # of different ranks (X [B, T, D] with its mask [B, T]) fails to build in TF 2.21.
  gathered = [context.all_gather(value, axis=0) for value in values]
  sizes = context.all_gather(tf.shape(values[0])[:1], axis=0)
  offset = tf.reduce_sum(sizes[:context.replica_id_in_sync_group])
  return tuple(gathered), offset


def gtc_contrast(sentence, gt_mask, all_clips, all_clip_mask, offset, tau):
  """Eq. 2 per sentence: positives are its GT clips, negatives every other valid clip of
  its own video and of every other video in the global batch.

  Args:
    sentence [B, D], gt_mask [B, T]: this replica's examples, whose own clips are read from
      the global batch.
    all_clips [G, T, D], all_clip_mask [G, T]: the global batch; example i is at offset + i.
  Returns:
    `[B]` -log(sum_P e^{x.y/tau} / sum_{P+N} e^{x.y/tau}).
  """
  logits = ops.einsum("gtd,bd->bgt", all_clips, sentence) / tau
  own = ops.one_hot(offset + ops.arange(ops.shape(sentence)[0]), ops.shape(all_clips)[0])
  positives = own[:, :, None] * gt_mask[:, None, :]
  candidates = ops.broadcast_to(all_clip_mask[None], ops.shape(logits))
  return _masked_logsumexp(logits, candidates) - _masked_logsumexp(logits, positives)


def ss_contrast(w, all_sentences, offset, tau):
  """Eq. 6 per sentence: positive (w_i, Y_i), negatives (w_i, Y_j) for j != i.

  Args:
    w [B, D] (unit vectors), all_sentences [G, D]; example i is at offset + i.
  Returns:
    `[B]` -log(e^{w_i.Y_i/tau} / sum_j e^{w_i.Y_j/tau}).
  """
  logits = ops.einsum("bd,gd->bg", w, all_sentences) / tau
  own = ops.one_hot(offset + ops.arange(ops.shape(w)[0]), ops.shape(all_sentences)[0])
  return ops.logsumexp(logits, axis=1) - ops.sum(logits * own, axis=1)


def _masked_logsumexp(logits, mask):
  flat_logits = ops.reshape(logits, (ops.shape(logits)[0], -1))
  flat_mask = ops.reshape(mask, (ops.shape(mask)[0], -1))
  return ops.logsumexp(ops.where(flat_mask > 0, flat_logits, -1e9), axis=1)


@keras.saving.register_keras_serializable(package="sscs_tf")
class SscsBranch(keras.layers.Layer):
  """Support-set based cross-supervision, as a training-only branch.

  Args:
    mode: "gtc" (GT clip-based learning, Eq. 2-3) or "ss" (support-set based, Eq. 4-7).
    lambda1, lambda2: weights of L_contrast and L_caption in Eq. 1; 0 switches one off.
    tau: temperature (0.1 in the paper).
    dim: size of the shared space of X and Y.
    head: "linear" or "mlp" projections Psi, Phi.
    support: "video" | "gt" | "non_gt" (Sec. 3.4).
    function: "ca" | "sa" | "fc" | "conv" | "mp" | "ap" (Sec. 3.4).
    reduction: "sum" (Eq. 2 and 6 sum over the batch, as written) or "mean"; the caption
      loss is always a mean (Eq. 3 and 7).
    num_clips: T, the clip count of `clip_features [B, T, H]` (2D-TAN: its map size N;
      LGI: num_segments), not the video's feature rows; the "fc" function needs it.
    vocab_size: training vocabulary size, for the caption decoder.
    caption_units, caption_embedding_dim: the decoder's GRU and word-embedding sizes.

  Call: a dict with `clip_features [B, T, H]`, `clip_mask [B, T]`, `sentence_feature
  [B, H']`, `start`, `end`, `duration [B]` (seconds), `word_ids [B, L]`, `num_words [B]`.
  Returns a dict of `[B]` float32 tensors: `contrast` (when lambda1 > 0), `caption` (when
  lambda2 > 0), `fell_back` (1 where a Non-GT support set was empty and V-SS was used),
  `gt_clips` (size of M_i).
  The branch computes in float32 whatever the global mixed-precision policy.
  """

  def __init__(self, mode="ss", lambda1=0.1, lambda2=0.1, tau=0.1, dim=256, head="linear",
               support="video", function="ca", reduction="sum", num_clips=16,
               vocab_size=0, caption_units=256, caption_embedding_dim=256, **kwargs):
    kwargs.setdefault("dtype", "float32")
    super().__init__(**kwargs)
    if mode not in MODES[1:]:
      raise ValueError(f"SscsBranch mode must be one of {MODES[1:]}, got {mode!r} (mode "
                       "'off' builds no branch).")
    if reduction not in REDUCTIONS:
      raise ValueError(f"Unknown reduction {reduction!r}; expected one of {REDUCTIONS}.")
    if lambda2 > 0 and vocab_size <= 0:
      raise ValueError("The caption objective (lambda2 > 0) needs vocab_size > 0.")
    self.mode, self.lambda1, self.lambda2, self.tau = mode, lambda1, lambda2, tau
    self.dim, self.head, self.support, self.function = dim, head, support, function
    self.reduction, self.num_clips, self.vocab_size = reduction, num_clips, vocab_size
    self.caption_units, self.caption_embedding_dim = caption_units, caption_embedding_dim
    self.psi = _head(head, dim, "psi")
    # Y is read by the contrastive terms and by cross-attention; with neither, Phi would get
    # no gradient, so it is not built.
    uses_sentence = lambda1 > 0 or (mode == "ss" and function == "ca")
    self.phi = _head(head, dim, "phi") if uses_sentence else None
    self.support_function = None
    if mode == "ss":
      self.support_function = SupportFunction(function, dim, num_clips, tau,
                                              name="support_function", dtype="float32")
    self.pooling, self.decoder = None, None
    if lambda2 > 0:
      if mode == "gtc":
        self.pooling = AttentivePooling(dim, name="gt_pooling", dtype="float32")
      self.decoder = CaptionDecoder(vocab_size, caption_units, caption_embedding_dim,
                                    name="caption_decoder", dtype="float32")

  def build(self, input_shape):
    clips_shape = tuple(input_shape["clip_features"])
    batch, clip_count = clips_shape[0], clips_shape[1]
    self.psi.build(clips_shape)
    if self.phi is not None:
      self.phi.build(tuple(input_shape["sentence_feature"]))
    shared = (batch, clip_count, self.dim)
    if self.support_function is not None:
      self.support_function.build(shared, (batch, self.dim), (batch, clip_count))
    if self.pooling is not None:
      self.pooling.build(shared, (batch, clip_count))
    if self.decoder is not None:
      self.decoder.build((batch, self.dim))

  def call(self, inputs):
    clip_mask = ops.cast(inputs["clip_mask"], "float32")
    valid = clip_mask[..., None] > 0
    # Padded rows are zeroed before the projection, with `where`: 0 * NaN is NaN, so a
    # multiplication would let NaN/Inf past the mask into every sum over clips.
    features = ops.where(valid, ops.cast(inputs["clip_features"], "float32"), 0.0)
    # X = l2(Psi(F)), Y = l2(Phi(G)): x^T y is the cosine similarity of Eq. 4.
    clips = ops.where(valid, _unit(self.psi(features)), 0.0)
    sentence = None
    if self.phi is not None:
      sentence = _unit(self.phi(ops.cast(inputs["sentence_feature"], "float32")))
    gt_mask = gt_clip_mask(inputs["start"], inputs["end"], inputs["duration"], clip_mask)
    outputs = {"gt_clips": ops.sum(gt_mask, axis=1)}
    if self.mode == "ss":
      members, outputs["fell_back"] = support_mask(self.support, clip_mask, gt_mask)
      w = _unit(self.support_function(clips, sentence, members))
      if self.lambda1 > 0:
        (all_sentences,), offset = gather_global_batch(sentence)
        outputs["contrast"] = ss_contrast(w, all_sentences, offset, self.tau)
    else:
      outputs["fell_back"] = ops.zeros_like(outputs["gt_clips"])
      w = self.pooling(clips, gt_mask) if self.pooling is not None else None
      if self.lambda1 > 0:
        (all_clips, all_mask), offset = gather_global_batch(clips, clip_mask)
        outputs["contrast"] = gtc_contrast(sentence, gt_mask, all_clips, all_mask, offset,
                                           self.tau)
    if "contrast" in outputs:
      # A sample with no valid clip has nothing to contrast (no positive, no support):
      # it adds nothing, where the masked log-sum-exp would give it 1e9 (GTC) or log G.
      has_clips = ops.sum(clip_mask, axis=1) > 0
      outputs["contrast"] = ops.where(has_clips, outputs["contrast"], 0.0)
    if self.decoder is not None:
      outputs["caption"] = self.decoder(w, inputs["word_ids"], inputs["num_words"])
    return outputs

  def losses_for_replica(self, outputs, global_batch_size):
    """This replica's share of lambda1 L_contrast and lambda2 L_caption (Eq. 1).

    Summed over replicas (as the optimizer sums gradients), the shares give the
    global-batch objectives: sums over the global batch for `reduction="sum"`, means
    otherwise; the caption loss is a mean (Eq. 3, 7).
    Returns a dict of scalars: `contrast`, `caption` (unweighted) and `total` (weighted).
    """
    terms = {}
    if "contrast" in outputs:
      terms["contrast"] = ops.sum(outputs["contrast"])
      if self.reduction == "mean":
        terms["contrast"] = terms["contrast"] / global_batch_size
    if "caption" in outputs:
      terms["caption"] = ops.sum(outputs["caption"]) / global_batch_size
    terms["total"] = (self.lambda1 * terms.get("contrast", 0.0)
                      + self.lambda2 * terms.get("caption", 0.0))
    return terms

  def get_config(self):
    config = super().get_config()
    config.update(mode=self.mode, lambda1=self.lambda1, lambda2=self.lambda2, tau=self.tau,
                  dim=self.dim, head=self.head, support=self.support,
                  function=self.function, reduction=self.reduction,
                  num_clips=self.num_clips, vocab_size=self.vocab_size,
                  caption_units=self.caption_units,
                  caption_embedding_dim=self.caption_embedding_dim)
    return config

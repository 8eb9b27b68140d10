"""The six support-set functions of Sec. 3.4 / Table 2: S_i, Y_i -> w_i."""

import keras
from keras import ops

from sscs_tf.models.layers import attentive_pool, masked_softmax
from sscs_tf.sscs.support import masked_max, masked_mean

FUNCTIONS = ("ca", "sa", "fc", "conv", "mp", "ap")


@keras.saving.register_keras_serializable(package="sscs_tf")
class SupportFunction(keras.layers.Layer):
  """Maps a support set to one vector `w_i` (before the l2 normalisation of Eq. 6).

  Args:
    function: "ca" cross-attention (Eq. 4-5), "sa" self-attention (Eq. 8), "fc" a Dense over
      the flattened set, "conv" Conv1D(dim, 3) then masked mean, "mp" / "ap" masked max /
      mean pooling.
    dim: D, the shared embedding size.
    num_clips: T, the clip count of `clips [B, T, D]`, needed by "fc" (its Dense reads all
      T*D values).
    tau: temperature of the attention softmaxes.

  Call: `(clips [B, T, D] unit vectors, sentence [B, D] unit vector, members [B, T])`
  -> `w [B, D]`. Non-members never contribute (they are zeroed or masked out).
  """

  def __init__(self, function="ca", dim=256, num_clips=16, tau=0.1, **kwargs):
    super().__init__(**kwargs)
    if function not in FUNCTIONS:
      raise ValueError(f"Unknown support function {function!r}; expected one of {FUNCTIONS}.")
    self.function = function
    self.dim = dim
    self.num_clips = num_clips
    self.tau = tau
    self.projection = None
    # The projection takes this layer's policy: the branch pins float32 under mixed precision.
    if function == "fc":
      self.projection = keras.layers.Dense(dim, name="fc", dtype=self.dtype_policy)
    elif function == "conv":
      self.projection = keras.layers.Conv1D(dim, 3, padding="same", name="conv",
                                            dtype=self.dtype_policy)

  def build(self, clips_shape, sentence_shape=None, members_shape=None):
    if self.function == "fc":
      self.projection.build((clips_shape[0], self.num_clips * clips_shape[-1]))
    elif self.function == "conv":
      self.projection.build(clips_shape)

  def call(self, clips, sentence, members):
    members = ops.cast(members, clips.dtype)
    if self.function == "ca":
      # Eq. 4: a_t = softmax over S_i of <x_t, Y_i> / tau; Eq. 5: w = sum_t a_t x_t.
      logits = ops.einsum("btd,bd->bt", clips, sentence) / self.tau
      return attentive_pool(masked_softmax(logits, members, zero_if_empty=True), clips)
    if self.function == "sa":
      # Eq. 8: Q = S^T S / tau over members, z_t = sum_t' Q[t, t'], a = softmax(z).
      similarity = ops.einsum("btd,bsd->bts", clips, clips) / self.tau
      z = ops.einsum("bts,bs->bt", similarity, members)
      return attentive_pool(masked_softmax(z, members, zero_if_empty=True), clips)
    zeroed = clips * members[..., None]
    if self.function == "fc":
      flat = ops.reshape(zeroed, (ops.shape(clips)[0], self.num_clips * ops.shape(clips)[2]))
      return self.projection(flat)
    if self.function == "conv":
      return masked_mean(self.projection(zeroed), members)
    if self.function == "mp":
      return masked_max(clips, members)
    return masked_mean(clips, members)  # "ap"

  def get_config(self):
    config = super().get_config()
    config.update(function=self.function, dim=self.dim, num_clips=self.num_clips,
                  tau=self.tau)
    return config

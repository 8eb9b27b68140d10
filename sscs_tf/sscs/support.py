"""Ground-truth clips and support-set membership (docs/sscs.md, "Ground-truth clips").

All functions take per-example tensors and return float32 masks `[B, T]` (1 = member).
"""

from keras import ops


def gt_clip_mask(start, end, duration, clip_mask):
  """M_i: the clips that lie at least half inside the ground-truth interval.

  Clip t of a video with n valid clips spans [t*d/n, (t+1)*d/n]. The clip holding the
  interval's midpoint is always a GT clip, so M_i is never empty (decision, see the spec).

  Args:
    start, end, duration: `[B]` seconds.
    clip_mask: `[B, T]`, 1 for the video's clips (a prefix), 0 for padding.
  Returns:
    `[B, T]` float32.
  """
  clip_mask = ops.cast(clip_mask, "float32")
  start, end, duration = (ops.cast(x, "float32")[:, None] for x in (start, end, duration))
  num_valid = ops.sum(clip_mask, axis=1, keepdims=True)  # n
  clip_length = duration / ops.maximum(num_valid, 1.0)
  index = ops.cast(ops.arange(ops.shape(clip_mask)[1]), "float32")[None, :]
  clip_start, clip_end = index * clip_length, (index + 1.0) * clip_length
  overlap = ops.maximum(ops.minimum(clip_end, end) - ops.maximum(clip_start, start), 0.0)
  half_inside = ops.cast(overlap >= 0.5 * clip_length, "float32")
  middle = ops.floor((start + end) * 0.5 / clip_length)
  middle = ops.clip(middle, 0.0, ops.maximum(num_valid - 1.0, 0.0))
  holds_middle = ops.cast(ops.equal(index, middle), "float32")
  return ops.maximum(half_inside, holds_middle) * clip_mask


SUPPORT_SETS = ("video", "gt", "non_gt")


def support_mask(kind: str, clip_mask, gt_mask):
  """Membership of the support set S_i (Sec. 3.4) and whether it fell back to V-SS.

  Args:
    kind: "video" (V-SS, every valid clip), "gt" (GT-SS, the GT clips) or "non_gt"
      (Non-GT-SS, valid clips outside the ground truth).
    clip_mask, gt_mask: `[B, T]`.
  Returns:
    (members `[B, T]` float32, fell_back `[B]` float32). A Non-GT-SS that is empty (the
    ground truth covers the whole video) falls back to V-SS for that sample.
  """
  clip_mask = ops.cast(clip_mask, "float32")
  no_fallback = ops.zeros_like(clip_mask[:, 0])
  if kind == "video":
    return clip_mask, no_fallback
  if kind == "gt":
    return ops.cast(gt_mask, "float32"), no_fallback
  if kind == "non_gt":
    members = clip_mask * (1.0 - ops.cast(gt_mask, "float32"))
    empty = ops.cast(ops.sum(members, axis=1) < 0.5, "float32")
    return members + empty[:, None] * (clip_mask - members), empty
  raise ValueError(f"Unknown support set {kind!r}; expected one of {SUPPORT_SETS}.")


def masked_mean(values, mask):
  """values `[B, T, D]`, mask `[B, T]` -> `[B, D]` mean over members."""
  mask = mask[..., None]
  return ops.sum(values * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


def masked_max(values, mask):
  """values `[B, T, D]`, mask `[B, T]` -> `[B, D]` max over members."""
  lowest = ops.full_like(values, -1e9)
  return ops.max(ops.where(mask[..., None] > 0, values, lowest), axis=1)


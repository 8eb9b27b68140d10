"""Support-set membership (docs/sscs.md, "What it computes"), from the ground-truth clips M_i of
`models.contract.gt_clip_mask`.

All functions take per-example tensors and return float32 masks `[B, T]` (1 = member).
"""

from keras import ops

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


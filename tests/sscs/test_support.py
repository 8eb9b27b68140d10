"""GT clips, support-set membership and the masked helpers, on cases worked by hand."""

import numpy as np
import pytest

from sscs_tf.models import contract, layers
from sscs_tf.sscs import support
from tests.sscs import numpy_reference as ref


def _gt(start, end, duration, clip_mask):
  clip_mask = np.asarray(clip_mask, np.float32)
  return contract.gt_clip_mask(np.float32([start]), np.float32([end]), np.float32([duration]),
                              clip_mask[None]).numpy()[0]


# Duration 8 s, 4 valid clips of 2 s: [0,2] [2,4] [4,6] [6,8] (exact binary fractions).
@pytest.mark.parametrize("start,end,expected", [
    (3.0, 5.0, [0, 1, 1, 0]),     # exactly half of clips 1 and 2 inside: both GT
    (3.25, 4.75, [0, 0, 1, 0]),   # 0.75 s of each: neither half; midpoint 4.0 is in clip 2
    (2.5, 3.0, [0, 1, 0, 0]),     # inside one clip, under half of it: the midpoint clip
    (0.0, 8.0, [1, 1, 1, 1]),     # the whole video
    (1.0, 7.0, [1, 1, 1, 1]),     # half of the first and last clips
    (1.1, 6.9, [0, 1, 1, 0]),     # just under half of the first and last clips
    (6.5, 8.0, [0, 0, 0, 1]),     # the last clip, under half: midpoint
])
def test_gt_clips_full_video(start, end, expected):
  np.testing.assert_array_equal(_gt(start, end, 8.0, [1, 1, 1, 1]), expected)


@pytest.mark.parametrize("start,end,duration,clip_mask,expected", [
    # 2 valid clips of 4 s (not 8 / T = 2 s): [0,4] [4,8]; padded clips are never GT.
    (5.0, 8.0, 8.0, [1, 1, 0, 0], [0, 1, 0, 0]),
    (2.0, 6.0, 8.0, [1, 1, 0, 0], [1, 1, 0, 0]),
    (0.0, 8.0, 8.0, [1, 1, 0, 0], [1, 1, 0, 0]),
    # 3 valid clips of 3 s; the interval runs past the video's end.
    (7.5, 30.0, 9.0, [1, 1, 1, 0], [0, 0, 1, 0]),   # half of clip 2; midpoint clamped
    (9.5, 12.0, 9.0, [1, 1, 1, 0], [0, 0, 1, 0]),   # entirely after the end: last clip
    (4.0, 30.0, 9.0, [1, 1, 1, 0], [0, 1, 1, 0]),   # 2 s of clip 1 (>= 1.5 s)
    # Starts before 0: 1 s of clip 0 (< 1.5 s), but the midpoint -1 s clamps to clip 0.
    (-3.0, 1.0, 9.0, [1, 1, 1, 0], [1, 0, 0, 0]),
])
def test_gt_clips_padded_and_past_the_end(start, end, duration, clip_mask, expected):
  np.testing.assert_array_equal(_gt(start, end, duration, clip_mask), expected)


def test_gt_clips_batch_matches_reference_on_random_intervals():
  rng = np.random.default_rng(3)
  batch, num_clips = 64, 8
  valid = rng.integers(1, num_clips + 1, batch)
  clip_mask = (np.arange(num_clips)[None] < valid[:, None]).astype(np.float32)
  duration = rng.uniform(3.0, 40.0, batch).astype(np.float32)
  start = (rng.uniform(0.0, 0.9, batch) * duration).astype(np.float32)
  end = (start + rng.uniform(0.0, 0.6, batch) * duration).astype(np.float32)
  got = contract.gt_clip_mask(start, end, duration, clip_mask).numpy()
  for b in range(batch):
    expected = np.zeros(num_clips)
    expected[ref.gt_clips(float(start[b]), float(end[b]), float(duration[b]), valid[b])] = 1
    np.testing.assert_array_equal(got[b], expected, err_msg=f"example {b}")
  assert got.sum(axis=1).min() >= 1  # M_i is never empty


CLIP_MASK = np.float32([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
GT_MASK = np.float32([[0, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 1]])


@pytest.mark.parametrize("kind,members,fell_back", [
    ("video", CLIP_MASK, [0, 0, 0]),
    ("gt", GT_MASK, [0, 0, 0]),
    # Example 1's GT covers its whole video: empty Non-GT set, falls back to its valid clips.
    ("non_gt", [[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 0]], [0, 1, 0]),
])
def test_support_mask(kind, members, fell_back):
  got_members, got_fell_back = support.support_mask(kind, CLIP_MASK, GT_MASK)
  np.testing.assert_array_equal(got_members.numpy(), members)
  np.testing.assert_array_equal(got_fell_back.numpy(), fell_back)


def test_support_mask_rejects_unknown_kind():
  with pytest.raises(ValueError, match="support set"):
    support.support_mask("all", CLIP_MASK, GT_MASK)


def test_masked_softmax_gives_members_only():
  logits = np.float32([[1.0, 2.0, 100.0], [0.0, -50.0, 3.0]])
  mask = np.float32([[1, 1, 0], [0, 1, 0]])
  got = layers.masked_softmax(logits, mask).numpy()
  e = np.e
  np.testing.assert_allclose(got[0], [1 / (1 + e), e / (1 + e), 0.0], rtol=1e-6)
  np.testing.assert_array_equal(got[1], [0.0, 1.0, 0.0])  # a single member gets all


def test_masked_mean_and_max_ignore_non_members():
  values = np.float32([[[-3, -1], [-2, -5], [10, 10]], [[1, 2], [3, 4], [5, 6]]])
  mask = np.float32([[1, 1, 0], [0, 0, 1]])
  np.testing.assert_array_equal(support.masked_max(values, mask).numpy(), [[-2, -1], [5, 6]])
  np.testing.assert_allclose(support.masked_mean(values, mask).numpy(),
                             [[-2.5, -3.0], [5.0, 6.0]])

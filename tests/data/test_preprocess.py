"""Preprocessing: hand-computed cases, numpy re-implementations, reference parity, and the
same results eagerly and inside `tf.data.Dataset.map`."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.data import preprocess
from tests.testing import shared_path


def _eager_and_mapped(fn, *args):
  """Runs `fn(*args)` eagerly and in a `tf.data` map; checks both agree, returns numpy."""
  eager = tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
  # Static shapes erased, as the pipeline sees them (T varies from video to video).
  unknown = lambda x: tf.compat.v1.placeholder_with_default(x, [None] * x.shape.rank)
  ds = tf.data.Dataset.from_tensors(tuple(args)).map(lambda *a: fn(*map(unknown, a)))
  mapped = tf.nest.map_structure(lambda t: t.numpy(), next(iter(ds)))
  tf.nest.map_structure(np.testing.assert_array_equal, eager, mapped)
  return eager


def _resample_numpy(features, num):
  """The reference rule, written as a loop."""
  num_rows = features.shape[0]
  idx = np.round(np.arange(num + 1, dtype=np.float32) / np.float32(num)
                 * np.float32(num_rows)).astype(np.int64)
  idx = np.minimum(idx, num_rows - 1)
  out = np.empty((num, features.shape[1]), np.float32)
  for i in range(num):
    s, e = idx[i], idx[i + 1]
    out[i] = features[s:e].mean(0) if e > s else features[s]
  return out


def test_l2_normalize_rows_by_hand():
  out = _eager_and_mapped(preprocess.l2_normalize_rows,
                          np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], np.float32))
  np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], rtol=1e-7)


def test_average_upsamples_three_rows_to_four():
  rows = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]], np.float32)
  # idx = round([0, .75, 1.5, 2.25, 3]) = [0, 1, 2, 2, 3] -> min(., 2) = [0, 1, 2, 2, 2]:
  # steps [0,1) [1,2) then two empty ranges that take row 2.
  out = _eager_and_mapped(lambda f: preprocess.average_to_fixed_length(f, 4), rows)
  np.testing.assert_array_equal(out, rows[[0, 1, 2, 2]])


def test_average_downsamples_and_drops_the_last_row():
  rows = np.arange(12, dtype=np.float32).reshape(6, 2)
  # idx = [0, 3, 6] -> [0, 3, 5]: means of rows 0..2 and 3..4; row 5 is in no range.
  out = _eager_and_mapped(lambda f: preprocess.average_to_fixed_length(f, 2), rows)
  np.testing.assert_array_equal(out, [rows[0:3].mean(0), rows[3:5].mean(0)])


@pytest.mark.parametrize("num_rows,num", [(1, 8), (2, 5), (7, 7), (40, 16), (511, 256),
                                           (513, 256)])
def test_average_matches_numpy_loop(num_rows, num):
  features = np.random.default_rng(num_rows).normal(size=(num_rows, 3)).astype(np.float32)
  out = preprocess.average_to_fixed_length(features, num).numpy()
  np.testing.assert_allclose(out, _resample_numpy(features, num), rtol=1e-6, atol=1e-6)


@pytest.mark.shared_data
def test_average_parity_with_reference():
  data = np.load(shared_path("parity", "2dtan", "average_to_fixed_length.npz"))
  sizes = sorted(int(k[len("in_T"):]) for k in data.files if k.startswith("in_T"))
  assert sizes == [1, 3, 17, 100, 255, 256, 257, 300, 1000]
  for num_rows in sizes:
    # The file applies the reference function to raw (unnormalised) rows.
    features = data[f"in_T{num_rows}"]
    out = preprocess.average_to_fixed_length(features, 256).numpy()
    np.testing.assert_allclose(out, data[f"out_T{num_rows}"], rtol=1e-6, atol=1e-7,
                               err_msg=f"T={num_rows}")
  _eager_and_mapped(preprocess.average_to_fixed_length, data["in_T300"])


def test_iou_map_two_by_two_by_hand():
  # Duration 4, N = 2, moment [1, 3]. Cells: (0,0) [0,2]: 1/3; (0,1) [0,4]: 2/4;
  # (1,0) [2,2]: no overlap; (1,1) [2,4]: 1/3.
  out = _eager_and_mapped(lambda d, s, e: preprocess.iou_map(d, s, e, 2),
                          np.float32(4.0), np.float32(1.0), np.float32(3.0))
  np.testing.assert_allclose(out, [[1 / 3, 0.5], [0.0, 1 / 3]], rtol=1e-7)


def test_iou_map_broadcasts_over_queries_and_survives_zero_duration():
  durations = np.array([10.0, 7.0, 0.0], np.float32)
  starts = np.array([1.0, 0.0, 0.0], np.float32)
  ends = np.array([4.5, 7.0, 0.0], np.float32)
  batched = _eager_and_mapped(lambda d, s, e: preprocess.iou_map(d, s, e, 5),
                              durations, starts, ends)
  assert batched.shape == (3, 5, 5)
  for i in range(3):
    np.testing.assert_array_equal(
        batched[i], preprocess.iou_map(durations[i], starts[i], ends[i], 5).numpy())
  np.testing.assert_array_equal(batched[2], np.zeros((5, 5)))
  assert batched[1, 0, 4] == 1.0


@pytest.mark.shared_data
def test_iou_map_parity_with_reference():
  data = np.load(shared_path("parity", "2dtan", "map_gt.npz"))
  cases = sorted(k for k in data.files if k.startswith("case"))
  assert len(cases) == 5
  for key in cases:
    duration, start, end, size = data[key]
    out = preprocess.iou_map(duration, start, end, int(size)).numpy()
    # The reference keeps times in float32 and computes the IoU in float64, as here; what
    # remains is the final rounding to float32 (half an ulp, < 6e-8 below 1).
    np.testing.assert_allclose(out, data["overlaps" + key[len("case"):]], rtol=0, atol=6e-8,
                               err_msg=key)


def _rows_of(picked, source):
  """Index of each picked row in `source` (rows are distinct)."""
  return [int(np.flatnonzero((source == row).all(1))[0]) for row in picked]


def test_pick_keeps_short_videos_and_pads():
  rows = np.arange(10, dtype=np.float32).reshape(5, 2) + 1.0
  picked, mask = _eager_and_mapped(lambda f, o: preprocess.pick_segments(f, 8, o),
                                   rows, np.int32(0))
  np.testing.assert_array_equal(picked[:5], rows)
  np.testing.assert_array_equal(picked[5:], np.zeros((3, 2)))
  np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 0, 0, 0])


@pytest.mark.parametrize("offset,expected_rows", [
    # T = 10, 4 segments: stride 2.5, positions s0 + 2.5 k, rounded half to even; r = 2.5 -
    # 0.5 is whole, so s0 is 0 or 1.
    (0, [0, 2, 5, 8]),        # 0, 2.5, 5, 7.5
    (1, [1, 4, 6, 8]),        # 1, 3.5, 6, 8.5
])
def test_pick_long_video_by_hand(offset, expected_rows):
  rows = np.arange(20, dtype=np.float32).reshape(10, 2)
  picked, mask = _eager_and_mapped(lambda f, o: preprocess.pick_segments(f, 4, o),
                                   rows, np.int32(offset))
  np.testing.assert_array_equal(picked, rows[expected_rows])
  np.testing.assert_array_equal(mask, np.ones(4))
  assert int(preprocess.num_pick_offsets(10, 4)) == 2


@pytest.mark.parametrize("num_rows,offset", [(300, 0), (300, 1), (129, 0), (1000, 7)])
def test_pick_matches_numpy_arange(num_rows, offset):
  rows = np.arange(num_rows * 2, dtype=np.float32).reshape(num_rows, 2)
  stride = num_rows / 128
  expected = np.round(np.arange(offset, num_rows - 0.5, stride))[:128].astype(int)
  picked, mask = preprocess.pick_segments(rows, 128, offset)
  assert int(mask.numpy().sum()) == len(expected) == 128
  np.testing.assert_array_equal(_rows_of(picked.numpy(), rows), expected)


def _fixed_length_cases():
  data = np.load(shared_path("parity", "lgi", "fixed_length_feat.npz"))
  sizes = sorted(int(k[len("in_T"):]) for k in data.files if k.startswith("in_T"))
  return data, sizes


@pytest.mark.shared_data
def test_pick_matches_reference_get_fixed_length_feat():
  data, sizes = _fixed_length_cases()
  assert sizes == [1, 17, 64, 127, 128, 129, 160, 192, 200, 255, 256, 257, 320, 333, 500, 1000]
  for t in sizes:  # test split: s0 = 0
    picked, mask = _eager_and_mapped(lambda f, o: preprocess.pick_segments(f, 128, o),
                                     data[f"in_T{t}"], np.int32(0))
    np.testing.assert_array_equal(picked, data[f"out_T{t}"], err_msg=f"T={t}")
    np.testing.assert_array_equal(mask, data[f"mask_T{t}"], err_msg=f"T={t}")
  for key in (k for k in data.files if k.startswith("train_rows_T")):
    t = int(key[len("train_rows_T"):])
    source = np.arange(t, dtype=np.float32)[:, None]  # row i holds i
    choices = data[f"train_s0_choices_T{t}"]
    np.testing.assert_array_equal(choices, np.arange(int(preprocess.num_pick_offsets(t))))
    for rows in data[key]:  # each draw: its first row is s0 (eager; mapped above)
      assert rows[0] in choices
      picked, mask = preprocess.pick_segments(source, 128, rows[0])
      np.testing.assert_array_equal(picked.numpy()[:, 0], rows, err_msg=key)
      assert mask.numpy().all()


def test_offset_support_equals_the_reference_rule_for_every_length():
  """The reference draws s0 = np.random.random_integers(0, r), r = T/128 - 0.5, minus 1 when
  whole; its support, drawn, equals 0..num_pick_offsets - 1 for T = 1..6000, and every
  offset gives 128 rows."""
  lengths = np.arange(1, 6001)
  counts = preprocess.num_pick_offsets(lengths, 128).numpy()
  rng = np.random.RandomState(0)
  for t, count in zip(lengths, counts):
    stride = t / 128 if t > 128 else 1.0
    last = stride - 0.5
    if last == np.floor(last):
      last -= 1.0
    with warnings.catch_warnings():  # random_integers is deprecated; it is the reference
      warnings.simplefilter("ignore", DeprecationWarning)
      support = np.unique(rng.random_integers(0, last, size=40 * count))
    np.testing.assert_array_equal(support, np.arange(count), err_msg=f"T={t}")
    if t > 128:
      assert len(np.arange(count - 1, t - 0.5, stride)) >= 128, t
  assert counts[:192].max() == 1 and counts[199] == 2 and counts[999] == 8


def test_drawn_offsets_are_uniform_eagerly_and_mapped():
  for num_rows, count in ((100, 1), (192, 1), (200, 2), (1000, 8), (5000, 39)):
    bits = np.arange(-5 * count, 7 * count, dtype=np.int64)  # negative bits too
    drawn = _eager_and_mapped(lambda b, t: preprocess.draw_pick_offset(b, t, 128),
                              bits, np.int32(num_rows))
    np.testing.assert_array_equal(np.bincount(drawn, minlength=count), np.full(count, 12))


@pytest.mark.shared_data
def test_lgi_gt_mask_matches_reference_generate_labels():
  data = np.load(shared_path("parity", "lgi", "gt_mask.npz"))
  duration, start, end, num_rows = data["cases"].T
  assert int(data["num_segments"]) == 128
  fn = lambda s, e, d, n: preprocess.lgi_gt_mask(s, e, d, n, 128)
  got = _eager_and_mapped(fn, start, end, duration, np.minimum(num_rows, 128).astype(np.int32))
  np.testing.assert_array_equal(got, data["att_mask"])
  # The regression targets are the annotated times over the duration, unclipped.
  np.testing.assert_array_equal(start / duration, data["start_pos"])
  np.testing.assert_array_equal(end / duration, data["end_pos"])


def test_lgi_gt_mask_by_hand():
  fn = lambda s, e, d, n: preprocess.lgi_gt_mask(s, e, d, n, 12)
  cases = [
      # (start, end, duration, n) -> marked steps
      ((1.0, 5.0, 20.0, 10), [0, 1, 2]),          # round(0.5) = 0, round(2.5) = 2
      ((2.0, 20.0, 20.0, 10), list(range(1, 11))),  # step 10 = n, a padded step
      ((0.1, 0.2, 20.0, 10), [0, 1]),               # end pushed to start + 1
      ((19.9, 20.0, 20.0, 10), [9, 10]),            # start clipped to n - 1
      ((0.0, 20.0, 20.0, 12), list(range(12))),     # g[0:13] clipped to 12 steps
      ((-2.0, 3.0, 20.0, 10), []),                  # g[-1:3]: Python's slice is empty
      ((-2.0, 30.0, 20.0, 10), [11]),               # g[-1:16]: the last step only
  ]
  for (start, end, duration, n), marked in cases:
    out = _eager_and_mapped(fn, np.float32(start), np.float32(end), np.float32(duration),
                            np.int32(n))
    expected = np.zeros(12, np.float32)
    expected[marked] = 1.0
    np.testing.assert_array_equal(out, expected, err_msg=str((start, end, duration, n)))


def test_lgi_gt_mask_broadcasts():
  starts = np.array([1.0, 2.0], np.float32)
  ends = np.array([5.0, 20.0], np.float32)
  out = preprocess.lgi_gt_mask(starts, ends, 20.0, 10, 12).numpy()
  for i in range(2):
    np.testing.assert_array_equal(
        out[i], preprocess.lgi_gt_mask(starts[i], ends[i], 20.0, 10, 12).numpy())

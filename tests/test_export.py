import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.run import run_dir
from sscs_tf.scoring import metrics
from sscs_tf.models import heads
from sscs_tf.serve import export_lib
from sscs_tf.train import train_lib
from sscs_tf.data import preprocess
from tests.testing import REPO_ROOT
from tests.testing_train import SERVE_ONE_REQUEST, tiny_config

SENTENCES = ["a person opens the door.", "person takes a cup in the room", "Sits ON chair!"]
LOAD_AND_SERVE = SERVE_ONE_REQUEST


@pytest.fixture(scope="module")
def exported(demo_records, tmp_path_factory):
  root = tmp_path_factory.mktemp("export")
  config = tiny_config(demo_records, "sscs=ss", num_train_steps=4)
  train_lib.train_and_evaluate(config, str(root / "run"))
  export_lib.export_run(str(root / "run"), str(root / "model"))
  return root


def _inputs():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(3, 60, 32)).astype(np.float32)
  return {"features": features, "lengths": np.array([60, 23, 9], np.int32),
          "durations": np.array([30.0, 11.5, 4.0], np.float32)}


def _keras_top_segments(root, inputs):
  """The same request through the Keras model and the numpy evaluation code."""
  model, config, _ = run_dir.load_model(str(root / "run"))
  vocab = run_dir.load_vocabulary(config)
  from sscs_tf.data import text
  tokens = text.tokenize_py(SENTENCES)
  length = max(len(t) for t in tokens)
  word_ids = np.array([vocab.encode(t) + [0] * (length - len(t)) for t in tokens], np.int32)
  videos = np.stack([preprocess.average_to_fixed_length(preprocess.l2_normalize_rows(
      f[:n]), 256).numpy() for f, n in zip(inputs["features"], inputs["lengths"])])
  outputs = model({"features": videos, "feature_mask": np.ones((3, 256), np.float32),
                   "word_ids": word_ids, "num_words": np.array([len(t) for t in tokens])})
  probs = tf.sigmoid(outputs["scores"]).numpy() * outputs["map_mask"].numpy()
  kept, num_kept = metrics.top_segments(probs, inputs["durations"], config.eval.nms_thresh)
  return kept, num_kept, probs, model


def test_fresh_process_outputs_equal_the_keras_model(exported, tmp_path):
  inputs = _inputs()
  np.savez(tmp_path / "in.npz", **inputs)
  result = subprocess.run(
      [sys.executable, "-c", LOAD_AND_SERVE, str(exported / "model"), str(tmp_path / "in.npz"),
       json.dumps(SENTENCES), str(tmp_path / "out.npz")],
      capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(tmp_path / "out.npz")
  kept, num_kept, probs, model = _keras_top_segments(exported, inputs)
  assert served["segments"].shape == (3, 5, 2) and served["scores"].shape == (3, 5)
  num_clips = probs.shape[1]
  for i in range(3):
    n = int(np.sum(served["scores"][i] >= 0))
    assert n == num_kept[i] and np.all(served["scores"][i, n:] == -1.0)
    # Each served segment is a cell of the Keras model's map with the same probability.
    cells = np.rint(served["segments"][i, :n] / inputs["durations"][i] * num_clips)
    starts, ends = cells[:, 0].astype(int), cells[:, 1].astype(int) - 1
    np.testing.assert_allclose(served["scores"][i, :n], probs[i, starts, ends], rtol=1e-5)
    assert np.all(np.diff(served["scores"][i, :n]) <= 0)
    assert served["scores"][i, 0] == pytest.approx(probs[i].max(), rel=1e-5)
    # A model trained 4 steps scores many cells exactly alike, and NMS may break those ties
    # either way: the head's segments are compared with the numpy evaluation on untied maps
    # in test_serving_head_keeps_the_segments_of_the_numpy_evaluation.
  # No Sscs weight in the SavedModel: exactly the baseline's variables.
  names = json.loads(result.stdout.strip().splitlines()[-1])
  assert len(names) == len(model.weights)
  assert not [n for n in names if any(k in n for k in ("psi", "phi", "caption", "sscs",
                                                         "support", "decoder"))]


def _op_types(model_dir):
  loaded = tf.saved_model.load(str(model_dir))  # holds the variables the signature uses
  serve = loaded.signatures["serving_default"]
  graph = serve.graph.as_graph_def()
  ops = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
  return sorted(ops), sorted(tuple(v.shape) for v in serve.variables)


@pytest.mark.parametrize("num_clips, nms_thresh", [(16, 0.5), (16, 0.45), (64, 0.5)])
def test_serving_head_keeps_the_segments_of_the_numpy_evaluation(num_clips, nms_thresh):
  rng = np.random.default_rng(num_clips)
  logits = rng.normal(size=(6, num_clips, num_clips)).astype(np.float32)  # no ties
  mask = np.triu(rng.uniform(size=(num_clips, num_clips)) < 0.6).astype(np.float32)
  mask[0, num_clips - 1] = 1.0
  durations = rng.uniform(3, 120, size=6).astype(np.float32)
  head = heads.TanHead(num_clips, nms_thresh)
  segments, scores = head({"scores": tf.constant(logits),
                           "map_mask": tf.constant(np.broadcast_to(mask, logits.shape))},
                          tf.constant(durations))
  probs = 1 / (1 + np.exp(-logits.astype(np.float64))) * mask
  kept, num_kept = metrics.top_segments(probs.astype(np.float32), durations, nms_thresh)
  assert np.all(num_kept == 5)
  np.testing.assert_allclose(segments.numpy(), kept, rtol=1e-5, atol=1e-4)
  assert np.all(np.diff(scores.numpy(), axis=1) <= 0)


@pytest.mark.parametrize("nms_thresh, second", [(0.5, [0.0, 3.3]), (0.45, [1.65, 2.475])])
def test_serving_head_keeps_an_iou_equal_to_the_threshold(nms_thresh, second):
  """N = 4, 3.3 s: cell (0, 1) is [0, 1.65] s, (0, 3) is [0, 3.3] s, IoU exactly 0.5: kept
  at a 0.5 threshold (dropped only when > thresh), dropped at 0.45, where (2, 2) follows."""
  logits = np.full((1, 4, 4), -8.0, np.float32)
  logits[0, 0, 1], logits[0, 0, 3], logits[0, 2, 2] = 3.0, 2.0, 1.0
  segments, scores = heads.TanHead(4, nms_thresh)(
      {"scores": tf.constant(logits), "map_mask": tf.ones((1, 4, 4))}, tf.constant([3.3]))
  np.testing.assert_allclose(segments.numpy()[0, :2], [[0.0, 1.65], second], rtol=1e-6)
  np.testing.assert_allclose(scores.numpy()[0, :2],
                             1 / (1 + np.exp(-np.array([3.0, 2.0 if nms_thresh == 0.5 else 1.0]))),
                             rtol=1e-6)


def test_sscs_off_and_on_export_the_same_graph(exported, demo_records, tmp_path):
  """The branch is training-only: a model trained without it exports the same ops and
  variables as the one trained with it."""
  config = tiny_config(demo_records, "sscs=off", num_train_steps=2)
  train_lib.train_and_evaluate(config, str(tmp_path / "run"))
  export_lib.export_run(str(tmp_path / "run"), str(tmp_path / "model"))
  assert _op_types(tmp_path / "model") == _op_types(exported / "model")


def _saved_model_cli(*args):
  """saved_model_cli in a fresh process that has the tensorflow-text ops registered (the
  console script alone cannot load a graph that uses them)."""
  run = ("import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli; "
         "sys.argv[0] = 'saved_model_cli'; sys.exit(saved_model_cli.main())")
  return subprocess.run([sys.executable, "-c", run, *map(str, args)], capture_output=True,
                        text=True, timeout=300)


def _signature_inputs(show_output):
  """{input name: (dtype, shape)} of serving_default in `saved_model_cli show` output."""
  block = show_output.split("signature_def['serving_default']:", 1)[1]
  block = block.split("contains the following output(s):", 1)[0]
  return {name: (dtype, shape) for name, dtype, shape in re.findall(
      r"inputs\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: ([^\n]+)", block)}


def test_saved_model_cli_lists_the_signature_with_its_shapes(exported):
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  result = subprocess.run([cli, "show", "--dir", str(exported / "model"), "--all"],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "signature_def['serving_default']" in result.stdout
  assert _signature_inputs(result.stdout) == {
      "sentences": ("DT_STRING", "(-1)"), "features": ("DT_FLOAT", "(-1, -1, 32)"),
      "lengths": ("DT_INT32", "(-1)"), "durations": ("DT_FLOAT", "(-1)")}
  for name in ("segments", "scores"):
    assert f"outputs['{name}']" in result.stdout


BAD_SHAPES = [((5, 32), "got rank] [2]"), ((2, 5, 7), "got width] [7]")]
SERVE_ONE_REQUEST = r"""
import sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
try:
  serve(sentences=tf.constant(["a person opens the door", "a person"]),
        features=tf.constant(np.load(sys.argv[2])), lengths=tf.constant([5, 3]),
        durations=tf.constant([3.0, 2.0]))
except tf.errors.InvalidArgumentError as error:
  sys.exit(error.message)
"""


@pytest.mark.parametrize("shape, got", BAD_SHAPES)
def test_a_request_of_another_shape_is_refused_in_a_fresh_process(exported, tmp_path, shape,
                                                                  got):
  # case_serve_rank2_features, case_serve_wrong_width: the signature does not enforce its
  # declared shape, the graph's checks refuse the request (after the graph optimizer ran).
  np.save(tmp_path / "features.npy", np.ones(shape, np.float32))
  result = subprocess.run([sys.executable, "-c", SERVE_ONE_REQUEST, str(exported / "model"),
                           str(tmp_path / "features.npy")],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert f"assertion failed: [features must be [batch, T, 32]: {got}" in result.stderr


@pytest.mark.parametrize("shape", [shape for shape, _ in BAD_SHAPES])
def test_saved_model_cli_run_refuses_a_request_of_another_shape(exported, tmp_path, shape):
  # A client that reads the declared shape refuses before the graph runs.
  inputs = {"sentences": np.array([b"a person opens the door", b"a person"]),
            "features": np.ones(shape, np.float32), "lengths": np.array([5, 3], np.int32),
            "durations": np.array([3.0, 2.0], np.float32)}
  for name, value in inputs.items():
    np.save(tmp_path / f"{name}.npy", value)
  result = _saved_model_cli(
      "run", "--dir", exported / "model", "--tag_set", "serve", "--signature_def",
      "serving_default", "--inputs", ";".join(f"{n}={tmp_path / n}.npy" for n in inputs))
  assert result.returncode != 0
  assert (f"Cannot feed value of shape {shape} for Tensor serving_default_features:0, which "
          "has shape (None, None, 32)") in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("change, message", [
    (dict(sentences=["...", "a person"]), r"empty sentence \(no word\) at batch indices\] \[0\]"),
    (dict(features=np.zeros((2, 5, 7), np.float32)), r"features must be \[batch, T, 32\]: "
     r"got width\] \[7\]"),
    (dict(features=np.zeros((2, 5, 32, 1), np.float32)), r"features must be \[batch, T, "
     r"32\]: got rank\] \[4\]"),
    (dict(features=np.zeros((2, 0, 32), np.float32), lengths=[0, 0]), r"T = 0"),
    (dict(durations=[-1.0, 3.0]), r"durations must be positive"),
    (dict(lengths=[6, 5]), r"lengths must be in \[1, T\]"),
    # case_serve_duration_inf, case_serve_duration_nan, case_serve_rank2_features
    (dict(durations=[np.inf, 3.0]), r"durations must be positive seconds, finite: got\] "
     r"\[inf 3\]"),
    (dict(durations=[2.0, np.nan]), r"durations must be positive seconds, finite"),
    (dict(features=np.ones((5, 32), np.float32)), r"features must be \[batch, T, 32\]: got "
     r"rank\] \[2\]"),
])
def test_bad_requests_fail_with_a_clear_message(exported, change, message):
  serve = tf.saved_model.load(str(exported / "model")).signatures["serving_default"]
  request = dict(sentences=["a person opens the door", "a person"],
                 features=np.ones((2, 5, 32), np.float32), lengths=[5, 3], durations=[3.0, 2.0])
  request.update(change)
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    serve(sentences=tf.constant(request["sentences"]),
          features=tf.constant(request["features"], tf.float32),
          lengths=tf.constant(request["lengths"], tf.int32),
          durations=tf.constant(request["durations"], tf.float32))


def test_ground_command_prints_intervals(exported, tmp_path):
  np.save(tmp_path / "video.npy", _inputs()["features"][0][:, None, None, :])
  result = subprocess.run(
      [sys.executable, "-m", "sscs_tf.cli.ground", f"--model={exported / 'model'}",
       f"--features={tmp_path / 'video.npy'}", "--duration=30", "--query=a person opens "
       "the door", "--query=person sits on the chair"],
      capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert lines[0] == "a person opens the door" and lines[1].startswith("  1. ")
  assert sum(line.startswith("  1. ") for line in lines) == 2


@pytest.mark.parametrize("args, message", [
    (["--query=   "], "empty sentence (no word) at batch indices] [0]"),
    (["--query=a person sits", "--duration=-3"], "durations must be positive seconds"),
    (["--query=a person sits", "--width=7"], "features must be [batch, T,"),
])
def test_ground_command_reports_a_refused_request(exported, tmp_path, args, message):
  width = next((int(a.split("=")[1]) for a in args if a.startswith("--width=")), None)
  features = _inputs()["features"][0]
  if width is not None:
    features = features[:, :width]
  np.save(tmp_path / "video.npy", features)
  result = subprocess.run(
      [sys.executable, "-m", "sscs_tf.cli.ground", f"--model={exported / 'model'}",
       f"--features={tmp_path / 'video.npy'}", "--duration=30"]
      + [a for a in args if not a.startswith("--width=")],
      capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("sscs-ground: ") and "refused the request" in last, result.stderr[-2000:]
  assert message in last and "Traceback" not in result.stderr


def test_ground_video_refuses_a_model_of_unknown_features(exported, tmp_path):
  # The demo data's features were not made by sscs-extract: their kind is not recorded.
  assert export_lib.read_extractor(str(exported / "model")) is None
  with open(exported / "model" / export_lib.EXTRACTOR_FILE) as f:
    assert json.load(f) == {"extractor": None}
  result = subprocess.run(
      [sys.executable, "-m", "sscs_tf.cli.ground", f"--model={exported / 'model'}",
       f"--video={tmp_path / 'clip.mp4'}", "--query=a person sits"],
      capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("sscs-ground: ") and "does not record which extractor" in last
  assert "--force" in last and "Traceback" not in result.stderr

"""The command-line tools, run as users run them (subprocesses)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.testing import REPO_ROOT

# tests/testing_train.tiny_config as command-line overrides of configs/tan_demo.py.
TINY = ["--config.model.feature_dim=32", "--config.model.hidden_size=16",
        "--config.model.lstm_units=16", "--config.model.map_num_layers=2",
        "--config.sscs.dim=16", "--config.sscs.caption_units=16",
        "--config.sscs.caption_embedding_dim=16", "--config.data.batch_size=8",
        "--config.data.eval_batch_size=32", "--config.data.shuffle_buffer=64",
        "--config.train.log_every_steps=1", "--config.train.analysis_images=False"]


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
  env.pop("TF_CONFIG", None)  # a worker's TF_CONFIG comes only from `extra`
  env.update(extra)
  return env


def _train_command(data_dir, workdir, *extra):
  return [sys.executable, "-m", "sscs_tf.cli.train",
          "--config", "configs/tan_demo.py:sscs=ss,epochs=2", f"--workdir={workdir}",
          f"--config.data.data_dir={data_dir}", *TINY, *extra]


def _checkpoint_step(workdir):
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  return int(path.rsplit("-", 1)[1]) if path else None


@pytest.mark.slow
def test_killed_run_resumes_with_its_step_count(demo_records, tmp_path):
  workdir = str(tmp_path / "run")
  command = _train_command(demo_records, workdir, "--config.train.checkpoint_every_steps=4")
  process = subprocess.Popen(command, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while _checkpoint_step(workdir) is None and process.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = _checkpoint_step(workdir)
  assert killed_at is not None, process.stderr.read()[-3000:]
  # The queries 2D-TAN's protocol reads (the records also hold the one it drops).
  queries = json.load(open(os.path.join(demo_records, "meta.json")))["splits"]["train"][
      "protocols"]["tan"]["queries"]
  total = 2 * (queries // 8)  # 2 epochs of full batches of 8
  assert killed_at < total
  result = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resumed from {workdir}/checkpoints/ckpt-{killed_at} at step {killed_at}" in \
      result.stderr
  assert f"Training from step {killed_at} to {total}" in result.stderr
  assert _checkpoint_step(workdir) == total
  # The schedule goes on where it stopped: no step before the checkpoint is trained again.
  logged = [int(line.split("step ")[1].split("/")[0]) for line in result.stderr.splitlines()
            if "train_lib" in line and "] step " in line]
  assert logged and min(logged) == killed_at + 1 and max(logged) == total


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_on_localhost(demo_records, tmp_path):
  workers = [f"localhost:{_free_port()}" for _ in range(2)]
  workdir = str(tmp_path / "run")
  processes = []
  for index in range(2):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": index}})
    processes.append(subprocess.Popen(
        _train_command(demo_records, workdir, "--config.train.num_train_steps=4",
                       "--config.train.checkpoint_every_steps=2"),
        cwd=REPO_ROOT, env=_env(TF_CONFIG=tf_config), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True))
  outputs = [p.communicate(timeout=600)[1] for p in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  assert "Training with MultiWorkerMirroredStrategy, 2 replicas" in outputs[0]
  assert _checkpoint_step(workdir) == 4
  # Only the chief writes the run folder's summaries.
  assert os.path.isdir(os.path.join(workdir, "tensorboard", "train"))
  assert not os.path.exists(os.path.join(workdir, "tmp", "worker_1"))


@pytest.mark.slow
def test_eval_command_prints_and_writes_the_table(demo_records, tmp_path):
  workdir = str(tmp_path / "run")
  train = subprocess.run(_train_command(demo_records, workdir,
                                        "--config.train.num_train_steps=3"),
                         cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert train.returncode == 0, train.stderr[-3000:]
  predictions = tmp_path / "predictions.jsonl"
  result = subprocess.run(
      [sys.executable, "-m", "sscs_tf.cli.eval", f"--workdir={workdir}", "--split=test",
       "--checkpoint=latest", f"--predictions={predictions}"],
      cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| split | Rank1@0.5 | Rank1@0.7 | Rank5@0.5 | Rank5@0.7 | mIoU |" in result.stdout
  table = json.load(open(os.path.join(workdir, "eval_test.json")))
  meta = json.load(open(os.path.join(demo_records, "meta.json")))
  assert table["num_queries"] == meta["splits"]["test"]["queries"]
  assert table["checkpoint"].endswith("ckpt-3")
  rows = [json.loads(line) for line in open(predictions)]
  assert len(rows) == table["num_queries"]
  assert {"query_id", "video_id", "sentence", "gt", "segments", "ious"} <= set(rows[0])
  hits = sum(bool(r["ious"]) and r["ious"][0] > 0.5 for r in rows) / len(rows)
  assert hits == pytest.approx(table["Rank1@0.5"])
  _check_the_evaluated_checkpoint_is_named_and_not_selected_on_its_split(workdir)


def _eval(workdir, *flags):
  return subprocess.run([sys.executable, "-m", "sscs_tf.cli.eval", f"--workdir={workdir}",
                         *flags], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                        timeout=600)


def _check_the_evaluated_checkpoint_is_named_and_not_selected_on_its_split(workdir):
  best = _eval(workdir)  # the best checkpoint, chosen on `val`, on the test split
  assert best.returncode == 0, best.stderr[-3000:]
  assert "best Rank1@0.5 on 'val' (step 3)" in best.stdout
  assert "| query dependence | value |" in best.stdout
  table = json.load(open(os.path.join(workdir, "eval_test.json")))
  assert table["selection"]["split"] == "val"
  assert table["selection"]["selected_on_reported_split"] is False
  assert 0.0 <= table["query_dependence"]["same_top1"] <= 1.0
  refused = _eval(workdir, "--split=val")
  assert refused.returncode != 0
  assert refused.stderr.strip().splitlines()[-1].startswith(
      "sscs-eval: the checkpoint"), refused.stderr[-2000:]
  assert "--allow_selected_on_split" in refused.stderr
  assert not os.path.exists(os.path.join(workdir, "eval_val.json"))
  allowed = _eval(workdir, "--split=val", "--allow_selected_on_split")
  assert allowed.returncode == 0, allowed.stderr[-3000:]
  assert "| val (selected on val) |" in allowed.stdout
  labelled = json.load(open(os.path.join(workdir, "eval_val.json")))
  assert labelled["selection"]["selected_on_reported_split"] is True


def test_train_command_rejects_a_feature_width_mismatch(demo_records, tmp_path):
  command = _train_command(demo_records, str(tmp_path / "run"))
  command = [c for c in command if not c.startswith("--config.model.feature_dim")]
  result = subprocess.run(command, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
  assert result.returncode != 0
  assert "config.model.feature_dim is 128 but the features in" in result.stderr
  assert "are 32-d" in result.stderr

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sscs_tf.train import study
from tests.testing import REPO_ROOT

TINY = ["--config.model.feature_dim=32", "--config.model.hidden_size=16",
        "--config.model.lstm_units=16", "--config.model.map_num_layers=2",
        "--config.sscs.dim=16", "--config.sscs.caption_units=16",
        "--config.sscs.caption_embedding_dim=16", "--config.data.batch_size=8",
        "--config.train.num_train_steps=8", "--config.train.checkpoint_every_steps=1"]


def _command(records, workdir):
  return [sys.executable, "-m", "sscs_tf.cli.study", "--config=configs/tan_demo.py:epochs=1",
          "--variants=off,ss", "--seeds=0", f"--workdir={workdir}",
          f"--config.data.data_dir={records}"] + TINY


def _kill_once_second_run_has_a_checkpoint(command, workdir):
  """Starts the study and SIGKILLs it once the second run (ss) has saved a checkpoint."""
  marker = os.path.join(workdir, "runs", "ss_seed0", "checkpoints", "checkpoint")
  process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 900
  while not os.path.exists(marker):
    assert process.poll() is None, "the study ended before it could be interrupted"
    assert time.time() < deadline, "no checkpoint of the second run after 15 minutes"
    time.sleep(0.1)
  process.send_signal(signal.SIGKILL)
  process.wait()


@pytest.mark.slow
def test_study_resumes_after_a_kill_and_writes_the_table(demo_records, tmp_path):
  workdir = tmp_path / "study"
  command = _command(demo_records, workdir)
  _kill_once_second_run_has_a_checkpoint(command, str(workdir))
  off_result = workdir / "runs" / "off_seed0" / study.RESULT
  assert off_result.exists()
  assert not (workdir / "runs" / "ss_seed0" / study.RESULT).exists()
  off_before = (off_result.read_text(), off_result.stat().st_mtime_ns)

  resumed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=900)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "off_seed0: done before, skipped" in resumed.stderr
  assert "Resumed from" in resumed.stderr  # the killed run went on from its checkpoint
  assert (off_result.read_text(), off_result.stat().st_mtime_ns) == off_before

  summary = json.load(open(workdir / "study.json"))
  results = {v: json.load(open(workdir / "runs" / f"{v}_seed0" / study.RESULT))
             for v in ("off", "ss")}
  for variant, result in results.items():
    table = result["table"]
    assert result["split"] == "test" and result["selection"]["split"] == "val"
    row = summary["variants"][variant]
    assert row["Rank1@0.5"]["per_seed"] == [table["Rank1@0.5"]]
    assert row["same top-1"]["per_seed"] == [table["query_dependence"]["same_top1"]]
    assert row["top-1 swapped sentence"]["per_seed"] == [
        table["query_dependence"]["query_shuffled"]["accuracy_swapped"]]
    assert os.path.isdir(workdir / "runs" / f"{variant}_seed0" / "tensorboard" / "val")
  assert summary["paired_vs_off"]["ss"]["Rank1@0.5"]["mean"] == pytest.approx(
      results["ss"]["table"]["Rank1@0.5"] - results["off"]["table"]["Rank1@0.5"])
  markdown = (workdir / "study.md").read_text()
  assert markdown == study.markdown(summary) + "\n"
  assert "| ss - off |" in markdown and "Checkpoints: best Rank1@0.5 on `val`" in markdown

  # Once finished, the same command trains nothing and writes the same table.
  again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert (workdir / "study.md").read_text() == markdown
  assert "Training from step" not in again.stderr


def test_variant_config_sets_the_objective_and_the_seed_only(demo_records):
  from tests.testing_train import tiny_config  # pylint: disable=import-outside-toplevel
  config = tiny_config(demo_records, "sscs=off")
  gtc = study.variant_config(config, "gtc_contrast", 3)
  assert (gtc.seed, gtc.sscs.mode, gtc.sscs.lambda1, gtc.sscs.lambda2) == (3, "gtc", 0.1, 0.0)
  assert gtc.sscs.dim == config.sscs.dim == 16  # the widths stay the config's
  assert config.sscs.mode == "off"  # the given config is not changed
  with pytest.raises(ValueError, match="Unknown sscs variant 'sss'"):
    study.run_study(config, ["off", "sss"], [0], "/nonexistent")


def _result(rank, same, swapped, step):
  query = dict(same_top1=same, top1_on_other_gt=0.1, top1_on_own_gt=0.5,
               query_shuffled=dict(queries=10, accuracy_own=rank, accuracy_swapped=swapped),
               by_moments={"2": dict(queries=10, accuracy=rank)})
  return dict(split="test", selection=dict(split="val", metric="Rank1@0.5", step=step),
              table={"Rank1@0.5": rank, "mIoU": rank / 2, "loss": 1.0, "num_queries": 10,
                     "seconds": 1.0, "query_dependence": query})


def test_summary_by_hand():
  results = {"off": {0: _result(0.30, 0.8, 0.30, 10), 1: _result(0.40, 0.7, 0.38, 20)},
             "ss": {0: _result(0.50, 0.3, 0.20, 30), 1: _result(0.70, 0.2, 0.25, 40)}}
  summary = study.summarize(results, [0, 1])
  assert summary["columns"] == ["Rank1@0.5", "mIoU", "same top-1", "top-1 on other GT",
                                "top-1 own sentence", "top-1 swapped sentence"]
  ss = summary["variants"]["ss"]["Rank1@0.5"]
  assert ss["per_seed"] == [0.5, 0.7] and ss["mean"] == pytest.approx(0.6)
  assert ss["sd"] == pytest.approx(0.1 * 2 ** 0.5)  # sample sd of 0.5, 0.7
  paired = summary["paired_vs_off"]["ss"]["Rank1@0.5"]  # differences 0.2 and 0.3
  assert (paired["mean"], paired["sd"]) == (pytest.approx(0.25), pytest.approx(0.05 * 2 ** 0.5))
  assert summary["paired_vs_off"]["ss"]["top-1 swapped sentence"]["mean"] == pytest.approx(
      -0.115)
  assert summary["by_moments"]["off"]["2"]["mean"] == pytest.approx(0.35)
  text = study.markdown(summary)
  assert "| ss | 60.00 ± 14.14 | 30.00 ± 7.07 | 25.00 ± 7.07 |" in text
  assert "| ss - off | +25.00 ± 7.07 |" in text
  assert "Checkpoints: best Rank1@0.5 on `val`, at steps off 10, 20; ss 30, 40." in text

"""`sscs-eval --html` and `sscs-ground --html` as users run them, the pages opened in
headless Chromium."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from selenium.webdriver.common.by import By

from sscs_tf.scoring import diagnostics
from sscs_tf.serve import export_lib
from sscs_tf.train import train_lib
from tests import browser
from tests.testing import REPO_ROOT
from tests.testing_train import tiny_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(browser.missing()), reason=browser.missing())]


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
  result = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.fixture(scope="module")
def run(demo_records, tmp_path_factory):
  root = tmp_path_factory.mktemp("report_run")
  train_lib.train_and_evaluate(tiny_config(demo_records, "sscs=ss", num_train_steps=2),
                               str(root / "run"))
  return root


def _open(driver, path):
  driver.get("file://" + path)
  browser.wait_for(driver, "document.body.dataset.ready === '1'")
  assert browser.console_errors(driver) == []


def test_eval_writes_a_report_with_its_table_and_figures(run, demo_records):
  report = str(run / "report.html")
  stdout = _run("sscs_tf.cli.eval", f"--workdir={run / 'run'}", "--checkpoint=latest",
                f"--html={report}")
  assert f"Report written to {report}" in stdout
  table = json.load(open(run / "run" / "eval_test.json"))
  meta = json.load(open(os.path.join(demo_records, "meta.json")))
  with browser.chromium() as driver:
    _open(driver, report)
    for name in ("Rank1@0.5", "Rank5@0.7", "mIoU"):
      cell = driver.find_element(By.CSS_SELECTOR, f'#metrics td[data-key="{name}"]')
      assert cell.text == f"{100 * table[name]:.2f}"
    assert driver.execute_script("return document.body.dataset.matching") == str(
        meta["splits"]["test"]["queries"])
    for name in ("fig7_video_text_similarity", "fig8_correct_by_start_and_length"):
      width = driver.execute_script(f"return document.querySelector('#{name} img').naturalWidth")
      assert width >= 1200
    assert "Sscs" in driver.find_element(By.ID, "run").text
    # The query-dependence check sscs-eval printed and wrote, beside the metrics.
    check = table["query_dependence"]
    rows = driver.find_elements(By.CSS_SELECTOR, "#query-check td")
    assert rows[0].text == f"{100 * check['same_top1']:.2f} of {check['same_video_pairs']}"
    assert len(rows) == 3 + len(check["by_moments"])
    blind = bool(diagnostics.query_blind_signs(check))
    assert bool(driver.find_elements(By.ID, "query-blind")) == blind
    assert ("Warning: the model looks query-blind" in stdout) == blind


def test_ground_writes_a_report_of_the_queries(run, tmp_path):
  export_lib.export_run(str(run / "run"), str(run / "model"))
  features = np.random.default_rng(0).normal(size=(40, 32)).astype(np.float32)
  np.save(tmp_path / "video.npy", features)
  report = str(tmp_path / "ground.html")
  stdout = _run("sscs_tf.cli.ground", f"--model={run / 'model'}",
                f"--features={tmp_path / 'video.npy'}", "--duration=20",
                "--query=a person opens the door", "--query=person sits on the chair",
                f"--html={report}")
  printed = [re.findall(r"([\d.]+) s - +([\d.]+) s", line) for line in stdout.splitlines()]
  printed = [[float(v) for v in m[0]] for m in printed if m]
  with browser.chromium() as driver:
    _open(driver, report)
    assert [e.text for e in driver.find_elements(By.CSS_SELECTOR, "td.sentence")] == [
        "a person opens the door\nquery 1", "person sits on the chair\nquery 2"]
    bars = driver.find_elements(By.CSS_SELECTOR, "#queries .bar.pred")
    shown = [[float(b.get_attribute("data-start")), float(b.get_attribute("data-end"))]
             for b in bars]
    np.testing.assert_allclose(shown, printed, atol=0.01)

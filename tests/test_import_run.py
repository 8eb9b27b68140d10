"""Reference 2D-TAN weights become a run folder that the evaluation tools read."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from configs import tan_charades
from sscs_tf.run import run_dir
from tests.models.test_tan_import import _load, _model_and_inputs
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


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                    reason="torch is installed: the message for its absence cannot show")
def test_import_command_says_how_to_get_torch(tmp_path):
  (tmp_path / "model.pkl").write_bytes(b"not read")
  result = subprocess.run(
      [sys.executable, "-m", "sscs_tf.cli.import_2dtan", "--config",
       "configs/tan_charades.py:variant=pool", f"--checkpoint={tmp_path / 'model.pkl'}",
       f"--workdir={tmp_path / 'run'}", f"--config.data.data_dir={tmp_path}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert "Reading PyTorch checkpoints needs torch: pip install 'sscs_tf[torch]'" in \
      result.stderr

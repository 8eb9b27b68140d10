"""Reading run folders back: configs written before a field existed."""

import json

from configs import lgi_charades
from sscs_tf.run import run_dir


def test_config_without_a_data_protocol_reads_the_clipped_times(tmp_path):
  config = json.loads(lgi_charades.get_config().to_json_best_effort())
  assert config["data"].pop("protocol") == "lgi"
  (tmp_path / "config.json").write_text(json.dumps(config))
  # Such runs trained and evaluated on 2D-TAN's clipped ground truth; that stays.
  assert run_dir.load_config(str(tmp_path)).data.protocol == "tan"
  config["data"]["protocol"] = "lgi"
  (tmp_path / "config.json").write_text(json.dumps(config))
  assert run_dir.load_config(str(tmp_path)).data.protocol == "lgi"

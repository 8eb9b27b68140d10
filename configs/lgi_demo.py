r"""LGI with Sscs on the demo data (`python -m data_prep.demo`), small enough to train in a
few minutes on 2 CPU cores (`sscs-demo --baseline lgi`).

  --config configs/lgi_demo.py                  # SS (V-SS + CA), both objectives
  --config configs/lgi_demo.py:sscs=off,seed=1

The architecture is LGI's Charades-STA one (3 phrases, relu output, 10-word queries) at
small widths, on the demo's 128-d features.
"""

from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, sscs="ss", seed=0, epochs=12)
  config = common.lgi_config(
      dataset="charades_sta", feature_dim=128, num_phrases=3, num_nonlocal_blocks=1,
      num_heads=2, dqa_lambda=0.3, max_query_length=10, output_activation="relu",
      num_epochs=args.epochs, val_split="val", eval_split="test", runlocal=False,
      sscs=args.sscs)
  common.shrink_for_demo(config, args.seed)
  with config.unlocked():
    config.model.embedding_dim = 64
  return config

r"""VSLNet with Sscs on the demo data (`python -m data_prep.demo`), small enough to train in a
few minutes on 2 CPU cores (`sscs-demo --baseline vslnet`).

  --config configs/vslnet_demo.py                  # SS (V-SS + CA), both objectives
  --config configs/vslnet_demo.py:sscs=off,seed=1

The architecture is VSLNet's Charades-STA one (rnn predictor, highlighting lambda 5) at small
widths, on the demo's 128-d features.
"""

from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, sscs="ss", seed=0, epochs=12)
  config = common.vslnet_config(
      dataset="charades_sta", feature_dim=128, max_position_length=128,
      num_epochs=args.epochs, batch_size=16, val_split="val", eval_split="test",
      runlocal=False, sscs=args.sscs)
  common.shrink_for_demo(config, args.seed)
  with config.unlocked():
    config.model.num_heads = 4  # head width 16, as 128 / 8 in the published model
  return config

r"""VSLNet on Charades-STA.

  --config configs/vslnet_charades.py              # I3D features (the `vslnet` preset)
  --config configs/vslnet_charades.py:runlocal     # tiny widths, short run
  --config configs/vslnet_charades.py:val_split=   # all of train, as published

Published values from the authors' `main.py` defaults (26hzhang/VSLNet, `--task charades`;
docs/models.md, VSLNet).
"""

from configs import common

FEATURE_DIMS = {"i3d": 1024}  # Published: --video_feature_dim 1024 (I3D, Kinetics).


def get_config(arg=None):
  args = common.parse_arg(arg, feature="i3d", val_split="val", **common.COMMON_ARGS)
  common.check_choice("feature", args.feature, FEATURE_DIMS)
  return common.vslnet_config(
      dataset="charades_sta",
      feature_dim=FEATURE_DIMS[args.feature],
      max_position_length=128,  # Published: --max_pos_len 128.
      num_epochs=100,  # Published: --epochs 100 ...
      batch_size=16,  # ... --batch_size 16.
      # `val`: carved out of the training videos by data_prep.charades_sta; the authors
      # select on the test split, which `val_split=` with best on test would reproduce.
      val_split=args.val_split,
      eval_split="test",
      runlocal=args.runlocal, sscs=args.sscs, paper_optim=args.paper_optim)

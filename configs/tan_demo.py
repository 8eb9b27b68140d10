r"""2D-TAN with Sscs on the demo data (`python -m data_prep.demo`), small enough to train in
a few minutes on 2 CPU cores. What `sscs-demo` runs.

  --config configs/tan_demo.py                  # SS (V-SS + CA), both objectives
  --config configs/tan_demo.py:sscs=off         # the baseline alone
  --config configs/tan_demo.py:sscs=gtc,seed=1

The architecture is Charades-STA's 2D-TAN (N = 16, one scale of 16 layers, conv map), at
small widths; the demo features are 128-d and its GloVe-format vectors 300-d.
"""

from configs import common, tan_charades


def get_config(arg=None):
  args = common.parse_arg(arg, variant="conv", sscs="ss", seed=0, epochs=12)
  common.check_choice("variant", args.variant, tan_charades.NMS_THRESH)
  config = common.tan_config(
      dataset="charades_sta", variant=args.variant, feature_dim=128, num_clips=16,
      num_scale_layers=[16], map_kernel_size=5, map_num_layers=4, min_iou=0.5, max_iou=1.0,
      nms_thresh=tan_charades.NMS_THRESH[args.variant], iou_thresholds=[0.5, 0.7],
      val_split="val", eval_split="test", runlocal=False, sscs=args.sscs)
  common.shrink_for_demo(config, args.seed)
  with config.unlocked():
    config.model.lstm_units = 64
    config.model.lstm_layers = 1
    config.train.num_epochs = args.epochs
  return config

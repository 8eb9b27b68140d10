r"""2D-TAN with Sscs on the demo data (`python -m data_prep.demo`), small enough to train in
a few minutes on 2 CPU cores. What `sscs-demo` runs.

  --config configs/tan_demo.py                  # SS (V-SS + CA), both objectives
  --config configs/tan_demo.py:sscs=off         # the baseline alone
  --config configs/tan_demo.py:sscs=gtc,seed=1

The architecture is Charades-STA's 2D-TAN (N = 16, one scale of 16 layers, conv map), at
small widths; the demo features are 128-d and its GloVe-format vectors 300-d.
"""

from configs import common


def get_config(arg=None):
  args = common.parse_arg(arg, variant="conv", sscs="ss", seed=0, epochs=12)
  config = common.tan_config(
      dataset="charades_sta", variant=args.variant, feature_dim=128, num_clips=16,
      num_scale_layers=[16], map_kernel_size=5, map_num_layers=4, min_iou=0.5, max_iou=1.0,
      nms_thresh=0.5 if args.variant == "conv" else 0.45, iou_thresholds=[0.5, 0.7],
      val_split="", eval_split="test", runlocal=False, sscs=args.sscs)
  with config.unlocked():
    config.seed = args.seed
    config.model.hidden_size = 64
    config.model.lstm_units = 64
    config.model.lstm_layers = 1
    config.data.batch_size = 32
    config.data.shuffle_buffer = 2048
    # A small model on clean synthetic data learns faster than 1e-4 allows in minutes.
    config.optim.learning_rate = 1e-3
    config.train.num_epochs = args.epochs
    config.train.log_every_steps = 20
    config.train.checkpoint_every_steps = 100
    config.sscs.dim = 64
    config.sscs.caption_units = 64
    config.sscs.caption_embedding_dim = 64
  return config

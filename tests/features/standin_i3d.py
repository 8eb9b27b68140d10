"""A tiny model with I3D's interface, for tests that need a model but not its numbers.

[B, T, 224, 224, 3] -> {"feature": [B, 1024], "logits": [B, 400]}, with a layer named
"Mixed_5c" of ceil(T / 8) x 7 x 7 positions, as in the real network.
"""

import keras


def build_standin(seed: int = 0) -> keras.Model:
  keras.utils.set_random_seed(seed)
  frames = keras.Input([None, 224, 224, 3])
  small = keras.layers.AveragePooling3D((8, 32, 32), padding="same")(frames)
  mixed_5c = keras.layers.Dense(1024, activation="relu", name="Mixed_5c")(small)
  pooled = keras.layers.AveragePooling3D((2, 7, 7), strides=1)(mixed_5c)
  feature = keras.ops.mean(pooled, axis=(1, 2, 3))
  logits = keras.layers.Dense(400)(feature)
  return keras.Model(frames, {"feature": feature, "logits": logits})

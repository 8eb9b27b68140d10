import os

# Quiet TensorFlow's C++ start-up lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices for the tests of distributed training (MirroredStrategy over
# "/cpu:0" and "/cpu:1"). This must happen before TensorFlow initialises its devices, so it
# is done once, here; ops placed by default still run on /cpu:0.
_cpus = tf.config.list_physical_devices("CPU")
if _cpus:
  try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:
    pass  # already initialised by a plugin; the distribution tests then skip

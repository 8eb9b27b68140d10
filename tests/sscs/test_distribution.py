"""Sscs under MirroredStrategy on two logical CPUs: same losses and gradients as one device.

Negatives come from the global batch (the branch all-gathers across replicas), so the
per-replica losses, summed, must equal the single-device loss on the whole batch, and the
per-replica gradients of the mirrored weights, summed, its gradient.
"""

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.sscs.branch import SscsBranch
from tests.sscs.test_exactness import make_branch, make_inputs

GLOBAL_BATCH, REPLICAS = 8, 2
DEVICES = ["/cpu:0", "/cpu:1"]


@pytest.fixture
def strategy(two_cpu_strategy):
  return two_cpu_strategy


def _single_device(branch, inputs):
  with tf.GradientTape() as tape:
    outputs = branch(inputs)
    terms = branch.losses_for_replica(outputs, GLOBAL_BATCH)
  grads = tape.gradient(terms["total"], branch.trainable_variables)
  return outputs, terms, grads


def _distributed(strategy, branch, inputs):
  per_replica = GLOBAL_BATCH // REPLICAS

  def shard(context):
    first = context.replica_id_in_sync_group * per_replica
    return {k: tf.constant(v[first:first + per_replica]) for k, v in inputs.items()}

  batch = strategy.experimental_distribute_values_from_function(shard)

  def replica_step(local):
    with tf.GradientTape() as tape:
      outputs = branch(local)
      terms = branch.losses_for_replica(outputs, GLOBAL_BATCH)
    return outputs, terms, tape.gradient(terms["total"], branch.trainable_variables)

  @tf.function
  def step(batch):
    outputs, terms, grads = strategy.run(replica_step, args=(batch,))

    def total(value):
      return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

    return ({k: strategy.gather(v, axis=0) for k, v in outputs.items()},
            {k: total(v) for k, v in terms.items()}, [total(g) for g in grads])

  return step(batch)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("mode,support,function", [("gtc", "video", "ca"),
                                                   ("ss", "video", "ca"),
                                                   ("ss", "non_gt", "conv")])
def test_two_replicas_match_one_device(strategy, mode, support, function, reduction):
  inputs = make_inputs(GLOBAL_BATCH, seed=31)
  single, config = make_branch(inputs, mode=mode, support=support, function=function,
                               reduction=reduction)
  with strategy.scope():
    mirrored = SscsBranch(**config)
    mirrored(inputs)
  mirrored.set_weights(single.get_weights())

  outputs, terms, grads = _single_device(single, inputs)
  dist_outputs, dist_terms, dist_grads = _distributed(strategy, mirrored, inputs)

  # Per-example outputs: the replicas saw the same global negatives as one device.
  assert set(dist_outputs) == set(outputs)
  for key in outputs:
    np.testing.assert_allclose(dist_outputs[key].numpy(), outputs[key].numpy(), rtol=1e-5,
                               atol=1e-5, err_msg=key)
  assert set(dist_terms) == {"contrast", "caption", "total"}
  for key in dist_terms:
    np.testing.assert_allclose(dist_terms[key].numpy(), np.asarray(terms[key]), rtol=1e-5,
                               err_msg=key)
  names = [v.path.split("/", 1)[1] for v in single.trainable_variables]
  assert names == [v.path.split("/", 1)[1] for v in mirrored.trainable_variables]
  for name, dist_grad, grad in zip(names, dist_grads, grads):
    # The embedding's gradient may come as IndexedSlices; compare dense values.
    dist_grad, grad = tf.convert_to_tensor(dist_grad), tf.convert_to_tensor(grad)
    assert np.abs(grad.numpy()).max() > 0.0, name
    np.testing.assert_allclose(dist_grad.numpy(), grad.numpy(), rtol=1e-4, atol=1e-6,
                               err_msg=name)

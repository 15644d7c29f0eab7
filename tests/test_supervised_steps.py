"""The supervised train and eval steps against hand computations."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.supervised import losses
from dlcore.data import eval_batches, Split
from dlcore.models import MLP
from dlcore.state import create_train_state
from dlcore.experiment import evaluate
from dlcore.supervised import eval_step, train_step


def mlp_state(lr=0.1, outputs=4, hidden=(32,), x=None):
  x = jnp.zeros((1, 6)) if x is None else x
  return create_train_state(MLP(hidden_sizes=hidden, num_outputs=outputs),
                            optax.sgd(lr), x, jax.random.PRNGKey(0))


def toy_batch(n=64, features=6, classes=4, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(n, features)).astype(np.float32),
          "label": rng.integers(0, classes, n).astype(np.int32)}


def test_cross_entropy_with_label_smoothing_matches_hand_computation():
  logits = jnp.array([[2.0, 0.0, -1.0]])
  log_p = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
  a = 0.3
  target = (1 - a) * jnp.array([0.0, 1.0, 0.0]) + a / 3
  expected = -jnp.sum(target * log_p)
  assert jnp.allclose(losses.cross_entropy(logits, jnp.array([1]), a), expected)
  assert jnp.allclose(losses.cross_entropy(logits, jnp.array([1])), -log_p[0, 1])


def test_one_step_is_plain_sgd_on_the_mean_loss():
  state, batch = mlp_state(), toy_batch()

  def mean_loss(params):
    logits = state.apply_fn({"params": params}, batch["image"])
    return jnp.mean(losses.cross_entropy(logits, batch["label"]))

  grads = jax.grad(mean_loss)(state.params)
  new_state, metrics = jax.jit(train_step)(state, batch, jax.random.PRNGKey(0))
  expected = jax.tree.map(lambda p, g: p - 0.1 * g, state.params, grads)
  for got, want in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert np.isclose(metrics["loss"], mean_loss(state.params), rtol=1e-5)
  assert int(new_state.step) == 1
  assert mean_loss(new_state.params) < mean_loss(state.params)


def test_small_model_overfits_64_examples():
  state, batch = mlp_state(lr=0.5, hidden=(128,)), toy_batch(n=64)
  step = jax.jit(train_step)
  for i in range(300):
    state, metrics = step(state, batch, jax.random.PRNGKey(i))
  sums = jax.jit(eval_step)(state, batch)
  assert float(sums["accuracy"].total) == float(sums["accuracy"].count) == 64.0
  assert float(metrics["loss"]) < 0.1


def test_regression_step_minimises_mean_squared_error():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 3)).astype(np.float32)
  batch = {"image": x, "label": x @ np.array([1.0, -2.0, 0.5], np.float32)}
  state = create_train_state(MLP(hidden_sizes=(), num_outputs=1), optax.sgd(0.1),
                             jnp.zeros((1, 3)), jax.random.PRNGKey(0))
  step = jax.jit(functools.partial(train_step, task="regression"))
  _, first = step(state, batch, jax.random.PRNGKey(0))
  predictions = state.apply_fn({"params": state.params}, x)[:, 0]
  assert np.isclose(first["loss"], np.mean((predictions - batch["label"]) ** 2),
                    rtol=1e-5)
  for i in range(200):
    state, metrics = step(state, batch, jax.random.PRNGKey(i))
  assert float(metrics["loss"]) < 1e-3 and "accuracy" not in metrics


class NormalisedLinear(nn.Module):
  """``Dense(3)``, BatchNorm (momentum 0.9, no scale or bias), ``Dense(4)``."""

  @nn.compact
  def __call__(self, x, train: bool = False, axis_name=None):
    x = nn.Dense(3)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     use_scale=False, use_bias=False, axis_name=axis_name)(x)
    return nn.Dense(4)(x)


def test_batchnorm_trains_on_batch_statistics_and_evaluates_on_running_ones():
  """The step normalises by the batch's mean and biased variance, moves the
  running statistics by ``0.9 old + 0.1 batch``, and evaluation uses those."""
  state = create_train_state(NormalisedLinear(), optax.sgd(0.1),
                             jnp.zeros((1, 6)), jax.random.PRNGKey(0))
  batch = toy_batch()
  x, labels = batch["image"].astype(np.float64), batch["label"]

  def hand_loss(params, mean, var):
    dense = lambda name, inputs: (inputs @ np.asarray(params[name]["kernel"])
                                  + np.asarray(params[name]["bias"]))
    normalised = (dense("Dense_0", x) - mean) / np.sqrt(var + 1e-5)
    logits = dense("Dense_1", normalised)
    return np.logaddexp.reduce(logits, -1) - logits[np.arange(len(x)), labels]

  hidden = x @ np.asarray(state.params["Dense_0"]["kernel"]) + np.asarray(
      state.params["Dense_0"]["bias"])
  new_state, metrics = jax.jit(train_step)(state, batch, jax.random.PRNGKey(0))
  assert float(metrics["loss"]) == pytest.approx(
      np.mean(hand_loss(state.params, hidden.mean(0), hidden.var(0))), rel=1e-5)
  before = state.batch_stats["BatchNorm_0"]  # Mean 0, variance 1.
  statistics = new_state.batch_stats["BatchNorm_0"]
  np.testing.assert_allclose(statistics["mean"],
                             0.9 * before["mean"] + 0.1 * hidden.mean(0),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(statistics["var"],
                             0.9 * before["var"] + 0.1 * hidden.var(0), rtol=1e-5)
  sums = jax.jit(eval_step)(new_state, batch)
  assert float(sums["loss"].total) == pytest.approx(np.sum(hand_loss(
      new_state.params, np.asarray(statistics["mean"]),
      np.asarray(statistics["var"]))), rel=1e-5)


def test_evaluation_counts_a_partial_last_batch_exactly():
  state = mlp_state()
  data = toy_batch(n=37)
  split = Split(data["image"], data["label"])
  batches = list(eval_batches(split, 16))
  assert [len(b["mask"]) for b in batches] == [16, 16, 16]
  assert sum(b["mask"].sum() for b in batches) == 37
  logits = state.apply_fn({"params": state.params}, data["image"])
  expected_accuracy = np.mean(np.argmax(logits, -1) == data["label"])
  expected_loss = np.mean(losses.cross_entropy(logits, data["label"]))
  metrics = evaluate(jax.jit(eval_step), state, eval_batches(split, 16))
  assert np.isclose(metrics["accuracy"], expected_accuracy)
  assert np.isclose(metrics["loss"], expected_loss, rtol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 5, 37, 64])
def test_eval_batches_cover_every_example_once(batch_size):
  split = Split(np.arange(37, dtype=np.float32)[:, None], np.arange(37, dtype=np.int32))
  seen = np.concatenate([b["label"][b["mask"] > 0] for b in eval_batches(split, batch_size)])
  assert np.array_equal(seen, np.arange(37))

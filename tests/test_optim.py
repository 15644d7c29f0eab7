"""The optimizer config against hand computations and optax's own rules."""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.config import field, validate
from dlcore.errors import ConfigError
from dlcore.models import MLP
from dlcore.optim import (OptimizerConfig, check_optimizer, create_optimizer,
                          ema_params, learning_rate_schedule, params_for_eval)
from dlcore.state import create_train_state
from dlcore.supervised import train_step


def run_updates(tx, params, grads_list):
  """Applies ``tx`` to each gradient in turn; returns the params after each."""
  opt_state, history = tx.init(params), []
  for grads in grads_list:
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return history, opt_state


def assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


# Schedules.

@pytest.mark.parametrize("schedule, expected", [
    ("constant", lambda t: 0.5),
    ("cosine", lambda t: 0.5 * 0.5 * (1 + math.cos(math.pi * t / 100))),
    ("linear", lambda t: 0.5 * (1 - t / 100)),
])
def test_schedule_values_at_chosen_steps(schedule, expected):
  lr = learning_rate_schedule(OptimizerConfig(lr=0.5, schedule=schedule), 100)
  for t in (0, 25, 50, 99, 100):
    assert np.isclose(lr(t), expected(t), rtol=1e-6, atol=1e-7), t


def test_warmup_then_linear_and_cosine():
  config = OptimizerConfig(lr=0.5, schedule="linear", warmup_steps=10)
  lr = learning_rate_schedule(config, 100)
  for t, want in ((0, 0.0), (5, 0.25), (10, 0.5), (55, 0.25), (100, 0.0)):
    assert np.isclose(lr(t), want, atol=1e-7), t
  cosine = learning_rate_schedule(
      OptimizerConfig(lr=0.5, schedule="cosine", warmup_steps=10), 100)
  reference = optax.warmup_cosine_decay_schedule(0.0, 0.5, 10, 100)
  steps = jnp.arange(101)
  np.testing.assert_array_equal(jax.vmap(cosine)(steps),
                                jax.vmap(reference)(steps))
  assert np.isclose(cosine(55), 0.25, atol=1e-7)


def test_schedule_counts_real_updates_under_accumulation():
  # sgd, unit gradients: each update is -lr_t; T = 8 // 2 = 4 updates.
  config = OptimizerConfig(name="sgd", lr=1.0, momentum=0.0,
                           schedule="linear", accumulate=2)
  history, _ = run_updates(create_optimizer(config, total_steps=8),
                           jnp.zeros(()), [jnp.ones(())] * 8)
  np.testing.assert_allclose(
      history, [0, -1, -1, -1.75, -1.75, -2.25, -2.25, -2.5], atol=1e-6)


# Weight decay, clipping.

def decay_params():
  return {"Dense_0": {"kernel": jnp.array([[1.0, -2.0], [3.0, 0.5]]),
                      "bias": jnp.array([0.3, -0.4])},
          "LayerNorm_0": {"scale": jnp.array([1.5, 0.7])}}


@pytest.mark.parametrize("name, kernel_step", [
    ("adamw", lambda w: -0.1 * 0.01 * w),                    # Decoupled.
    ("sgd", lambda w: -0.1 * 0.01 * w),                      # L2, no momentum.
    ("adam", lambda w: -0.1 * jnp.sign(w)),                  # L2, normalised.
])
def test_weight_decay_moves_only_kernels(name, kernel_step):
  params = decay_params()
  config = OptimizerConfig(name=name, lr=0.1, weight_decay=0.01, momentum=0.0)
  zero = jax.tree.map(jnp.zeros_like, params)
  (new,), _ = run_updates(create_optimizer(config, 10), params, [zero])
  w = params["Dense_0"]["kernel"]
  np.testing.assert_allclose(new["Dense_0"]["kernel"], w + kernel_step(w),
                             rtol=1e-5)
  np.testing.assert_array_equal(new["Dense_0"]["bias"], params["Dense_0"]["bias"])
  np.testing.assert_array_equal(new["LayerNorm_0"]["scale"],
                                params["LayerNorm_0"]["scale"])


def test_clip_at_known_global_norm_ignores_frozen_gradients():
  params = {"a": jnp.zeros(2), "b": jnp.zeros(1), "head": jnp.zeros(1)}
  grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0]),
           "head": jnp.array([1000.0])}  # Global norm of a, b: 5.
  config = OptimizerConfig(name="sgd", lr=1.0, momentum=0.0, clip_norm=1.0,
                           freeze=("head",))
  (new,), _ = run_updates(create_optimizer(config, 10), params, [grads])
  np.testing.assert_allclose(new["a"], [-0.6, 0.0], rtol=1e-6)
  np.testing.assert_allclose(new["b"], [-0.8], rtol=1e-6)
  np.testing.assert_array_equal(new["head"], [0.0])
  unclipped = OptimizerConfig(name="sgd", lr=1.0, momentum=0.0, clip_norm=6.0,
                              freeze=("head",))
  (new,), _ = run_updates(create_optimizer(unclipped, 10), params, [grads])
  np.testing.assert_array_equal(new["a"], [-3.0, 0.0])


@pytest.mark.parametrize("config, reference", [
    (OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
     optax.sgd(0.1, momentum=0.9, nesterov=True)),
    (OptimizerConfig(name="adam", lr=0.01, b1=0.8, b2=0.99),
     optax.adam(0.01, b1=0.8, b2=0.99)),
])
def test_rules_equal_optax(config, reference):
  params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  grads = [jax.tree.map(lambda p, k=k: jax.random.normal(k, p.shape), params)
           for k in keys]
  ours, _ = run_updates(create_optimizer(config, 10), params, grads)
  theirs, _ = run_updates(reference, params, grads)
  for got, want in zip(ours, theirs):
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(x, y, rtol=1e-6)


# Accumulation, EMA.

def test_accumulating_four_quarter_batches_equals_one_full_batch():
  rng = np.random.default_rng(0)
  batch = {"image": rng.normal(size=(16, 6)).astype(np.float32),
           "label": rng.integers(0, 4, 16).astype(np.int32)}
  model, key = MLP(hidden_sizes=(32,), num_outputs=4), jax.random.PRNGKey(0)

  def state_for(accumulate):
    config = OptimizerConfig(name="adam", lr=0.01, accumulate=accumulate)
    return create_train_state(model, create_optimizer(config, 100),
                              batch["image"][:1], key)

  step = jax.jit(train_step)
  full, _ = step(state_for(1), batch, key)
  micro = start = state_for(4)
  for i in range(4):
    micro, _ = step(micro, jax.tree.map(lambda x, i=i: x[4 * i:4 * i + 4],
                                        batch), key)
    if i < 3:
      assert_trees_equal(micro.params, start.params)
  assert not np.array_equal(micro.params["Dense_0"]["kernel"],
                            start.params["Dense_0"]["kernel"])
  for got, want in zip(jax.tree.leaves(micro.params),
                       jax.tree.leaves(full.params)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_ema_after_three_updates_follows_the_hand_recursion(accumulate):
  config = OptimizerConfig(name="sgd", lr=0.1, momentum=0.0, ema_decay=0.9,
                           accumulate=accumulate)
  gradients = [1.0, -2.0, 4.0]
  micro_grads = [{"w": jnp.array(g)} for g in gradients
                 for _ in range(accumulate)]
  history, opt_state = run_updates(create_optimizer(config, 12),
                                   {"w": jnp.array(3.0)}, micro_grads)
  param = ema = 3.0
  for g in gradients:
    param -= 0.1 * g
    ema = 0.9 * ema + 0.1 * param
  assert np.isclose(history[-1]["w"], param, rtol=1e-6)
  assert np.isclose(ema_params(opt_state)["w"], ema, rtol=1e-6)
  assert not np.isclose(ema, param)


def test_params_for_eval_is_the_ema_only_when_on():
  model, x = MLP(hidden_sizes=(4,), num_outputs=2), jnp.ones((1, 3))
  key = jax.random.PRNGKey(0)
  plain = create_train_state(model, create_optimizer(OptimizerConfig(), 10),
                             x, key)
  assert ema_params(plain.opt_state) is None
  assert params_for_eval(plain) is plain.params
  ema_tx = create_optimizer(OptimizerConfig(ema_decay=0.5), 10)
  state = create_train_state(model, ema_tx, x, key)
  grads = jax.tree.map(jnp.ones_like, state.params)
  state = state.apply_gradients(grads=grads)
  kernel = params_for_eval(state)["Dense_0"]["kernel"]
  # Adam's first update is -lr * sign(g): the EMA moves half of it.
  np.testing.assert_allclose(
      kernel, plain.params["Dense_0"]["kernel"] - 0.5e-3, rtol=1e-5)


# Freezing.

class ConvBN(nn.Module):
  """Two conv + BatchNorm blocks and a dense head: ``[B, 8, 8, 1] -> [B, 3]``."""

  @nn.compact
  def __call__(self, x, train=False, axis_name=None):
    for _ in range(2):
      x = nn.Conv(4, (3, 3))(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.5,
                       axis_name=axis_name)(x)
      x = nn.relu(x)
    return nn.Dense(3)(x.mean(axis=(1, 2)))


def test_frozen_params_and_batch_stats_stay_bit_identical():
  freeze = ("Conv_0/.*", "BatchNorm_0/.*")
  config = OptimizerConfig(name="adamw", lr=0.05, weight_decay=0.1,
                           freeze=freeze)
  x = jax.random.normal(jax.random.PRNGKey(1), (8, 8, 8, 1))
  batch = {"image": x, "label": jnp.arange(8) % 3}
  start = create_train_state(ConvBN(), create_optimizer(config, 10), x,
                             jax.random.PRNGKey(0), frozen=freeze)
  check_optimizer(config, start.params)
  step, state = jax.jit(train_step), start
  for i in range(3):
    state, _ = step(state, batch, jax.random.PRNGKey(i))
  for collection in ("params", "batch_stats"):
    for module in ("Conv_0", "BatchNorm_0", "Conv_1", "BatchNorm_1", "Dense_0"):
      before = getattr(start, collection).get(module)
      if before is None:
        continue
      after = getattr(state, collection)[module]
      for name in before:
        same = np.array_equal(before[name], after[name])
        assert same == (module in ("Conv_0", "BatchNorm_0")), (module, name)
  mu = optax.tree_utils.tree_get(state.opt_state, "mu")
  paths = [jax.tree_util.keystr(p, simple=True, separator="/")
           for p, _ in jax.tree_util.tree_leaves_with_path(mu)]
  assert sorted(paths) == ["BatchNorm_1/bias", "BatchNorm_1/scale",
                           "Conv_1/bias", "Conv_1/kernel", "Dense_0/bias",
                           "Dense_0/kernel"]


# Refusals.

def test_unmatched_freeze_pattern_is_refused_naming_real_paths():
  params = MLP(hidden_sizes=(4,), num_outputs=2).init(
      jax.random.PRNGKey(0), jnp.ones((1, 3)))["params"]
  with pytest.raises(ConfigError, match=r"option optimizer.freeze pattern "
                     r"'Conv_0/\.\*' matches no parameter.*Dense_0/kernel"):
    check_optimizer(OptimizerConfig(freeze=("Dense_1/.*", "Conv_0/.*")),
                    params, total_steps=10)


@pytest.mark.parametrize("options, message", [
    ({"lr": -1.0}, r"option optimizer.lr must be in \(0, 3.4e38\], got -1.0"),
    ({"name": "rmsprop"}, "option optimizer.name must be one of adam, adamw, "
                          "sgd, got 'rmsprop'"),
    ({"schedule": "step"}, "option optimizer.schedule must be one of"),
    ({"ema_decay": 1.0}, r"option optimizer.ema_decay must be in \[0, 1\)"),
    ({"accumulate": 0}, "option optimizer.accumulate must be at least 1"),
    ({"name": "sgd", "momentum": 0.0, "nesterov": True},
     "option optimizer.nesterov needs option optimizer.momentum above 0"),
    ({"warmup_steps": 5, "accumulate": 2},
     r"option optimizer.warmup_steps must be below the number of updates, 5"),
    ({"accumulate": 11}, "option optimizer.accumulate must be at most the "
                         "run's 10 steps, got 11"),
    ({"freeze": ("Dense_0/(",)}, "option optimizer.freeze has an invalid "
                                 "regular expression"),
])
def test_bad_options_are_refused_in_one_sentence(options, message):
  """Each option on its own (``validate``), then together (``check_optimizer``)."""
  @dataclasses.dataclass(frozen=True)
  class Run:
    optimizer: OptimizerConfig = field(OptimizerConfig(**options), "it")

  with pytest.raises(ConfigError, match=message) as error:
    validate(Run())
    check_optimizer(Run().optimizer, total_steps=10)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_weight_decay_spares_the_transformers_biases_and_scales(name):
  """Against optax with an explicit mask: kernels and embeddings decay, nothing else (not the [heads, head_dim] biases)."""
  from dlcore.models import create_classifier  # pylint: disable=import-outside-toplevel
  model = create_classifier("transformer", 10)
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0),
                                    jnp.ones((1, 8, 8, 1))))["params"]
  names = lambda tree: {jax.tree_util.keystr(p): leaf for p, leaf in
                        jax.tree_util.tree_leaves_with_path(tree)}
  explicit = jax.tree_util.tree_map_with_path(
      lambda path, _: jax.tree_util.keystr(path).endswith(
          ("['kernel']", "['position_embedding']")), params)
  assert not names(explicit)["['EncoderBlock_0']['MultiHeadAttention_0']"
                             "['query']['bias']"]
  wd, lr = 0.5, 1e-2
  reference = (optax.adamw(lr, weight_decay=wd, mask=explicit)
               if name == "adamw" else optax.chain(
                   optax.add_decayed_weights(wd, explicit), optax.adam(lr)))
  ours = create_optimizer(OptimizerConfig(name=name, lr=lr, weight_decay=wd),
                          10)
  grads = jax.tree.map(lambda p: jnp.cos(p) * 0.1, params)
  results = []
  for tx in (reference, ours):
    state, p = tx.init(params), params
    for _ in range(4):
      updates, state = tx.update(grads, state, p)
      p = optax.apply_updates(p, updates)
    results.append(p)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-7), *results)

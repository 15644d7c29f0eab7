"""TD targets and the DQN update against hand computations."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlcore.models.qnetworks import QNetwork, create_q_network
from dlcore.rl.dqn import DqnConfig, create_dqn_state, dqn_step, td_target
from dlcore.state import count_params

GAMMA = 0.9


def test_td_target_terminal_truncated_and_ongoing():
  # Rows: terminated; truncated by a time limit (stored as not terminated,
  # next_obs the true final observation); ongoing.
  reward = jnp.array([1.0, 2.0, -1.0])
  terminated = jnp.array([True, False, False])
  next_q_target = jnp.array([[5.0, 7.0], [3.0, -2.0], [0.5, 4.0]])
  expected = [1.0,                  # no bootstrap after a true end
              2.0 + GAMMA * 3.0,    # bootstraps from the final observation
              -1.0 + GAMMA * 4.0]
  np.testing.assert_allclose(
      td_target(reward, terminated, next_q_target, GAMMA), expected, rtol=1e-6)


def test_double_dqn_target_uses_online_argmax_and_target_value():
  reward = jnp.array([1.0, 0.0, 0.5])
  terminated = jnp.array([False, False, True])
  next_q_target = jnp.array([[5.0, 7.0, 1.0], [3.0, -2.0, 0.0],
                             [9.0, 9.0, 9.0]])
  next_q_online = jnp.array([[10.0, 0.0, 0.0], [0.0, 0.0, 1.0],
                             [1.0, 0.0, 0.0]])
  expected = [1.0 + GAMMA * 5.0,  # online picks a0; target values it at 5
              0.0 + GAMMA * 0.0,  # online picks a2; target says 0 (max is 3)
              0.5]
  np.testing.assert_allclose(
      td_target(reward, terminated, next_q_target, GAMMA, next_q_online),
      expected, rtol=1e-6)


@functools.cache
def _state(**overrides):
  return create_dqn_state(DqnConfig(**overrides), (3,), 2,
                          jax.random.PRNGKey(0))


def _batch(n=8, seed=1):
  k = jax.random.split(jax.random.PRNGKey(seed), 4)
  return {"obs": jax.random.normal(k[0], (n, 3)),
          "action": jax.random.randint(k[1], (n,), 0, 2),
          "reward": jax.random.normal(k[2], (n,)),
          "next_obs": jax.random.normal(k[3], (n, 3)),
          "terminated": jnp.arange(n) % 3 == 0}


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_step_loss_matches_a_hand_computation(double, loss):
  state = _state()
  # A distinct target network, so DQN and Double DQN targets differ.
  state = state.replace(target_params=jax.tree.map(
      lambda p: p * 1.5 + 0.1, state.params))
  batch = _batch()
  apply = lambda params, obs: np.asarray(state.apply_fn({"params": params}, obs))
  q_next_target = apply(state.target_params, batch["next_obs"])
  chooser = apply(state.params, batch["next_obs"]) if double else q_next_target
  best = q_next_target[np.arange(8), chooser.argmax(-1)]
  y = (np.asarray(batch["reward"])
       + GAMMA * (1 - np.asarray(batch["terminated"])) * best)
  td = apply(state.params, batch["obs"])[np.arange(8), batch["action"]] - y
  expected = (np.mean(td ** 2) if loss == "mse" else
              np.mean(np.where(abs(td) < 1, 0.5 * td ** 2, abs(td) - 0.5)))
  step = jax.jit(functools.partial(dqn_step, gamma=GAMMA, double=double,
                                   loss=loss))
  _, metrics = step(state, batch, jax.random.PRNGKey(2))
  np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
  assert set(metrics) == {"loss", "q_mean"}


def _close(a, b):
  return all(np.allclose(x, y, atol=1e-7) for x, y in
             zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_hard_target_update_every_k_updates():
  state = _state()
  initial = state.params
  step = jax.jit(functools.partial(dqn_step, gamma=GAMMA,
                                   target_update_period=3, tau=1.0))
  for update in range(1, 7):
    state, _ = step(state, _batch(seed=update), jax.random.PRNGKey(update))
    if update % 3:
      assert not _close(state.target_params, state.params)
    else:
      assert _close(state.target_params, state.params)  # A hard copy.
    if update < 3:
      assert _close(state.target_params, initial)  # Untouched before step 3.


def test_polyak_target_update():
  tau = 0.1
  state = _state()
  step = jax.jit(functools.partial(dqn_step, gamma=GAMMA,
                                   target_update_period=2, tau=tau))
  target = state.target_params
  state, _ = step(state, _batch(seed=1), jax.random.PRNGKey(1))
  assert _close(state.target_params, target)  # Update 1: not due.
  state, _ = step(state, _batch(seed=2), jax.random.PRNGKey(2))
  expected = jax.tree.map(lambda p, t: tau * p + (1 - tau) * t,
                          state.params, target)
  assert _close(state.target_params, expected)


def test_gradient_clipping_bounds_the_update():
  # With SGD at lr 1, the parameter change equals the (clipped) gradient.
  max_norm = 1e-3
  state = _state()
  sgd = optax.chain(optax.clip_by_global_norm(max_norm), optax.sgd(1.0))
  state = state.replace(tx=sgd, opt_state=sgd.init(state.params))
  new, metrics = jax.jit(functools.partial(dqn_step, gamma=GAMMA,
                                           report_grad_norm=True))(
      state, _batch(), jax.random.PRNGKey(0))
  change = optax.global_norm(jax.tree.map(jnp.subtract, new.params,
                                          state.params))
  assert float(metrics["grad_norm"]) > max_norm
  np.testing.assert_allclose(change, max_norm, rtol=1e-4)


def test_axis_name_averages_gradients_across_devices():
  # Two simulated devices with halves of a batch take the same step as one
  # device on the whole batch (equal halves, mean losses).
  state, batch = _state(), _batch(n=8)
  single, single_metrics = jax.jit(functools.partial(dqn_step, gamma=GAMMA))(
      state, batch, jax.random.PRNGKey(0))
  halves = jax.tree.map(lambda x: x.reshape(2, 4, *x.shape[1:]), batch)
  states = jax.tree.map(lambda x: jnp.stack([x, x]), state)
  step = functools.partial(dqn_step, gamma=GAMMA, axis_name="devices")
  multi, metrics = jax.jit(jax.vmap(step, in_axes=(0, 0, None),
                                    axis_name="devices"))(
      states, halves, jax.random.PRNGKey(0))
  for leaf, one in zip(jax.tree.leaves(multi.params),
                       jax.tree.leaves(single.params)):
    np.testing.assert_allclose(leaf[0], one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(leaf[1], one, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["loss"][0], single_metrics["loss"],
                             rtol=1e-5)


def test_q_networks_shapes_params_and_dueling_identity():
  mlp = QNetwork(num_actions=2)
  params = mlp.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]
  assert count_params(params) == (4 * 120 + 120) + (120 * 84 + 84) + (84 * 2 + 2)
  cnn = create_q_network((10, 10, 4), 3, dueling=True)
  variables = jax.jit(cnn.init)(jax.random.PRNGKey(0),
                                jnp.zeros((2, 10, 10, 4), bool))
  obs = jax.random.bernoulli(jax.random.PRNGKey(1), 0.3, (5, 10, 10, 4))
  q, inter = jax.jit(functools.partial(cnn.apply, capture_intermediates=True))(
      variables, obs)
  assert q.shape == (5, 3)
  head = inter["intermediates"]["QHead_0"]
  value = head["value"]["__call__"][0]
  advantage = head["advantage"]["__call__"][0]
  np.testing.assert_allclose(
      q, value + advantage - advantage.mean(-1, keepdims=True), rtol=1e-5)

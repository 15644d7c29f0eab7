"""PPO's pieces against hand computations and closed forms, and a short run that learns."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dlcore.models.actor_critic import ActorCritic
from dlcore.rl.ppo import (PpoConfig, clipped_surrogate, create_ppo_state, gae,
                           make_ppo_program, ppo_step, value_loss)
from dlcore.rl.ppo.config import iterations
from dlcore.rl.program import whole_run
from dlcore.rl.distributions import Categorical, DiagonalGaussian


def test_gae_stops_at_terminal_and_truncated_steps_and_bootstraps_truncation():
  # One environment, four steps: step 1 is truncated by a time limit (its
  # final observation is worth 0.7, the reset observation after it 0.2),
  # step 3 terminates (the 0.9 after it must not count).
  reward = jnp.array([1.0, 1.0, 1.0, 0.0])[:, None]
  value = jnp.array([0.5, 0.6, 0.2, 0.3])[:, None]
  next_value = jnp.array([0.6, 0.7, 0.3, 0.9])[:, None]
  terminated = jnp.array([False, False, False, True])[:, None]
  truncated = jnp.array([False, True, False, False])[:, None]
  advantages = gae(reward, value, next_value, terminated,
                   terminated | truncated, gamma=0.9, lam=0.8)
  # By hand, gamma * lambda = 0.72:
  a3 = 0.0 - 0.3                                  # terminal: no bootstrap
  a2 = (1.0 + 0.9 * 0.3 - 0.2) + 0.72 * a3        # 1.07 - 0.216
  a1 = 1.0 + 0.9 * 0.7 - 0.6                      # truncated: bootstraps, stops
  a0 = (1.0 + 0.9 * 0.6 - 0.5) + 0.72 * a1        # 1.04 + 0.72 * 1.03
  np.testing.assert_allclose(advantages[:, 0], [a0, a1, a2, a3], rtol=1e-6)
  np.testing.assert_allclose([a0, a1, a2, a3], [1.7816, 1.03, 0.854, -0.3])


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
  rng = np.random.default_rng(0)
  reward, value, next_value = rng.normal(size=(3, 6, 2)).astype(np.float32)
  next_value[:-1] = value[1:]  # No episode ends: V'_t = V(s_{t+1}).
  never = np.zeros((6, 2), bool)
  advantages = gae(reward, value, next_value, never, never, gamma=0.9, lam=1.0)
  discounts = 0.9 ** np.arange(6)
  for t in range(6):
    returns = (np.sum(discounts[:6 - t, None] * reward[t:], 0)
               + 0.9 ** (6 - t) * next_value[-1])
    np.testing.assert_allclose(advantages[t], returns - value[t], rtol=1e-5,
                               atol=1e-6)


def test_clipped_surrogate_by_hand_inside_and_outside_the_clip_range():
  ratio = jnp.array([0.5, 1.1, 1.5, 0.7, 1.5])
  advantage = jnp.array([1.0, 1.0, 1.0, -1.0, -1.0])
  # min(r A, clip(r, 0.8, 1.2) A): 0.5 (below the range, A > 0: unclipped),
  # 1.1 (inside), 1.2 (clipped), -0.8 (clipped), -1.5 (unclipped).
  loss, grad = jax.value_and_grad(clipped_surrogate)(ratio, advantage, 0.2)
  np.testing.assert_allclose(loss, -(0.5 + 1.1 + 1.2 - 0.8 - 1.5) / 5,
                             rtol=1e-6)
  # Clipped terms pass no gradient; the others -A / 5.
  np.testing.assert_allclose(grad, [-0.2, -0.2, 0.0, 0.0, 0.2], rtol=1e-6)


def test_value_loss_by_hand_clipped_and_not():
  value, old, target = (jnp.array([1.0, 2.0]), jnp.array([0.5, 0.5]),
                        jnp.array([0.0, 3.0]))
  np.testing.assert_allclose(value_loss(value, old, target, None), 0.5)
  # Clipped predictions 0.7, 0.7: the worse of (1, 0.49) and (1, 5.29).
  np.testing.assert_allclose(value_loss(value, old, target, 0.2),
                             0.5 * (1.0 + 5.29) / 2, rtol=1e-6)


def test_gaussian_log_prob_and_entropy_match_the_closed_forms():
  rng = np.random.default_rng(1)
  mean = rng.normal(size=(5, 3)).astype(np.float32)
  log_std = np.array([-0.5, 0.0, 0.7], np.float32)
  action = rng.normal(size=(5, 3)).astype(np.float32)
  dist = DiagonalGaussian(jnp.asarray(mean), jnp.asarray(log_std))
  std = np.exp(log_std)
  np.testing.assert_allclose(
      dist.log_prob(action),
      stats.norm.logpdf(action, mean, std).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(dist.entropy(),
                             np.full(5, stats.norm.entropy(0, std).sum()),
                             rtol=1e-5)
  samples = dist.sample(jax.random.PRNGKey(0))
  assert samples.shape == (5, 3) and dist.mode() is dist.mean


def test_categorical_log_prob_entropy_and_samples():
  logits = jnp.log(jnp.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]]))
  dist = Categorical(logits)
  np.testing.assert_allclose(dist.log_prob(jnp.array([2, 0])),
                             np.log([0.5, 0.9]), rtol=1e-6)
  p = np.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]])
  np.testing.assert_allclose(dist.entropy(), -(p * np.log(p)).sum(-1),
                             rtol=1e-6)
  np.testing.assert_array_equal(dist.mode(), [2, 0])
  draws = jax.vmap(lambda k: dist.sample(k)[0])(
      jax.random.split(jax.random.PRNGKey(0), 4000))
  np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, p[0],
                             atol=0.03)


def test_actor_critic_shapes_initialisation_and_shared_torso():
  obs = jnp.ones((7, 3))
  gaussian = ActorCritic(action_dim=2, continuous=True)
  params = gaussian.init(jax.random.PRNGKey(0), obs)["params"]
  dist, value = gaussian.apply({"params": params}, obs)
  assert dist.mean.shape == (7, 2) and value.shape == (7,)
  np.testing.assert_array_equal(params["log_std"], [0.0, 0.0])
  np.testing.assert_array_equal(
      gaussian.apply({"params": params}, obs, method="value"), value)
  # Orthogonal init: the first kernel's columns are orthonormal times sqrt(2).
  kernel = np.asarray(params["actor_0"]["kernel"])  # [3, 64]
  np.testing.assert_allclose(kernel @ kernel.T, 2 * np.eye(3), atol=1e-5)
  shared = ActorCritic(action_dim=2, shared=True).init(
      jax.random.PRNGKey(0), obs)["params"]
  assert sorted(shared) == ["policy_head", "torso_0", "torso_1", "value_head"]
  assert sorted(params) == ["actor_0", "actor_1", "critic_0", "critic_1",
                            "log_std", "policy_head", "value_head"]


def test_first_update_sees_ratio_one_and_moves_the_policy():
  config = PpoConfig(hidden_size=8, hidden_layers=1)
  state = create_ppo_state(config, (3,), 1, True, jax.random.PRNGKey(0),
                           num_updates=10)
  rng = np.random.default_rng(2)
  obs = rng.normal(size=(16, 3)).astype(np.float32)
  dist, value = state.apply_fn({"params": state.params}, obs)
  action = dist.sample(jax.random.PRNGKey(1))
  advantage = rng.normal(size=16).astype(np.float32)
  batch = {"obs": obs, "action": action, "log_prob": dist.log_prob(action),
           "value": value, "advantage": advantage, "target": value + advantage}
  new_state, metrics = jax.jit(ppo_step)(state, batch, jax.random.PRNGKey(2))
  # Ratio 1 everywhere: no KL, nothing clipped, and the surrogate is minus
  # the mean normalised advantage, 0; the value already matches its
  # target up to the advantage.
  assert abs(float(metrics["approx_kl"])) < 1e-6
  assert float(metrics["clip_fraction"]) == 0.0
  assert abs(float(metrics["policy_loss"])) < 1e-6
  np.testing.assert_allclose(metrics["value_loss"],
                             0.5 * np.mean(advantage ** 2), rtol=1e-5)
  np.testing.assert_allclose(metrics["entropy"], 0.5 * (1 + math.log(2 * math.pi)),
                             rtol=1e-6)  # log_std 0 in one dimension.
  assert int(new_state.step) == 1
  assert not np.allclose(new_state.params["log_std"], state.params["log_std"])


@pytest.mark.slow
def test_short_run_learns_cartpole_and_seeds_differ():
  # The reference hyperparameters for 3 chunks of 8,192 steps. A random
  # policy balances CartPole for about 22 steps. Mid-way through learning a
  # seed's return depends on float rounding (compiler flags move one seed
  # from 89 to over 100), so each seed must more than double it and their
  # mean pass 100.
  config = PpoConfig(total_steps=24_576)
  per_chunk, chunks = iterations(config)
  train = whole_run(make_ppo_program(config), chunks, per_chunk)
  runners, metrics = jax.jit(jax.vmap(train))(
      jax.random.split(jax.random.PRNGKey(0), 2))
  mean_return = np.asarray(metrics["return_sum"] / metrics["episodes"])
  np.testing.assert_array_equal(metrics["env_steps"],
                                [[8192, 16384, 24576]] * 2)
  assert (mean_return[:, 0] < 60).all(), mean_return  # [seeds, chunks]
  assert (mean_return[:, -1] > 2 * mean_return[:, 0]).all(), mean_return
  assert mean_return[:, -1].mean() > 100, mean_return
  kernels = runners.agent.params["actor_0"]["kernel"]
  assert not np.allclose(kernels[0], kernels[1])

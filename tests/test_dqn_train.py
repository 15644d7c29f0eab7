"""End-to-end DQN under jit: per-seed randomness, true final observations, learning Catch."""

import gymnax
import jax
import numpy as np
import pytest
from gymnax.environments import spaces

from dlcore.errors import ConfigError
from dlcore.optim import OptimizerConfig
from dlcore.rl.dqn import DqnConfig, make_dqn_program
from dlcore.rl.dqn.config import iterations
from dlcore.rl.envs import CONTINUOUS_ENVS, DISCRETE_ENVS, make_env
from dlcore.rl.program import whole_run

TINY = dict(total_steps=2_000, num_envs=4, buffer_size=1_000,
            learning_starts=200, batch_size=32, train_every=4,
            target_update_every=40, chunk_steps=1_000, eval_episodes=2)


def make_dqn_train(config: DqnConfig):
  """The whole run of ``config`` as one function of its key."""
  per_chunk, chunks = iterations(config)
  return whole_run(make_dqn_program(config), chunks, per_chunk)


@pytest.mark.slow
def test_vmapped_seeds_differ_and_store_true_final_observations():
  train = make_dqn_train(DqnConfig(**TINY))
  runners, metrics = jax.jit(jax.vmap(train))(
      jax.random.split(jax.random.PRNGKey(0), 2))
  assert metrics["env_steps"].tolist() == [[1_000, 2_000]] * 2
  assert (metrics["updates"][:, -1] == 250).all()  # 1000 steps / train_every
  assert int(runners.agent.step[0]) == (2_000 - 200) // 4 + 1
  for leaf in jax.tree.leaves(runners.agent.params):
    assert not np.allclose(leaf[0], leaf[1])  # Different init and data.
  assert not np.allclose(runners.buffer.storage["obs"][0],
                         runners.buffer.storage["obs"][1])
  # CartPole's Euler step: x' = x + 0.02 * x_dot for every stored transition,
  # terminated or not, so next_obs is the true successor, never a reset.
  storage = jax.device_get(runners.buffer.storage)
  np.testing.assert_allclose(storage["next_obs"][..., 0],
                             storage["obs"][..., 0] + 0.02 * storage["obs"][..., 1],
                             atol=1e-5)
  assert storage["terminated"].any()


def test_environment_lists_match_gymnax_action_spaces():
  for name in DISCRETE_ENVS:
    make_env(name)  # Raises unless the action space is Discrete.
  # The documented action sets: push left or right; torque -1, 0 or +1;
  # accelerate left, not or right; move the paddle left, not or right.
  for name, count in {"CartPole-v1": 2, "Acrobot-v1": 3, "MountainCar-v0": 3,
                      "Catch-bsuite": 3}.items():
    env, params = make_env(name)
    assert env.action_space(params).n == count, name
  for name in CONTINUOUS_ENVS:
    env, params = gymnax.make(name)
    assert isinstance(env.action_space(params), spaces.Box), name
    with pytest.raises(ConfigError, match="has continuous actions"):
      make_env(name)


@pytest.mark.slow
def test_short_run_learns_catch():
  # Random play catches the ball about one time in five: return about -0.6.
  config = DqnConfig(env="Catch-bsuite", total_steps=8_000, num_envs=10,
                     buffer_size=5_000, learning_starts=500, batch_size=32,
                     optimizer=OptimizerConfig(name="adam", lr=1e-3),
                     train_every=10, target_update_every=100,
                     chunk_steps=2_000, eval_episodes=50)
  program = make_dqn_program(config)
  train = make_dqn_train(config)
  runner, metrics = jax.jit(train)(jax.random.PRNGKey(0))
  assert metrics["return_sum"][0] / metrics["episodes"][0] < 0.0
  eval_return = jax.jit(program.evaluate)(runner.agent.params,
                                          jax.random.PRNGKey(1))
  assert float(eval_return) >= 0.8

"""Evaluating a policy: parallel episodes of a gymnax environment, their mean return."""

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

# ``act(params, obs [N, ...], key) -> actions [N, ...]``.
Policy = Callable[[Any, jax.Array, jax.Array], jax.Array]


def make_episodes(env, env_params, num_episodes: int, *,
                  stochastic: bool) -> Callable[[Policy, Any, jax.Array], jax.Array]:
  """``run(act, params, key) -> mean return`` of ``num_episodes`` parallel episodes.

  The episodes run for the environment's time limit; each counts the
  rewards of its first episode only. Each step's key splits into the
  policy's and the environment's when the policy is ``stochastic``; a
  deterministic policy's steps give their whole key to the environment.
  """
  num_steps = int(env_params.max_steps_in_episode)
  step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

  def run(act: Policy, params: Any, key: jax.Array) -> jax.Array:
    reset_key, key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(reset_key, num_episodes), env_params)

    def step(carry, step_key):
      obs, env_state, returns, running = carry
      if stochastic:
        act_key, env_key = jax.random.split(step_key)
      else:
        act_key, env_key = None, step_key
      action = act(params, obs, act_key)
      obs, env_state, reward, terminated, truncated, _ = step_env(
          jax.random.split(env_key, num_episodes), env_state, action,
          env_params)
      returns = returns + jnp.where(running, reward, 0.0)
      running = running & ~(terminated | truncated)
      return (obs, env_state, returns, running), None

    carry = (obs, env_state, jnp.zeros(num_episodes),
             jnp.ones(num_episodes, bool))
    (_, _, returns, _), _ = lax.scan(step, carry,
                                     jax.random.split(key, num_steps))
    return jnp.mean(returns)

  return run

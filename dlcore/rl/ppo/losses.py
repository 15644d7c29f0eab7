"""PPO's pure pieces: GAE, the clipped surrogate and the (clipped) value loss.

Usage::

  advantages = gae(reward, value, next_value, terminated, done,
                   gamma=0.99, lam=0.95)            # [T, N] each
  loss = clipped_surrogate(ratio, advantages, clip_eps=0.2)
  loss = value_loss(value, old_value, target, clip_eps=0.2)  # None: unclipped

Generalised advantage estimation (Schulman et al., 2016) over a rollout of
``T`` steps, with ``V'_t`` the value of the observation step ``t`` led to::

  delta_t = r_t + gamma (1 - terminated_t) V'_t - V(s_t)
  A_t     = delta_t + gamma lambda (1 - done_t) A_{t+1},   A_T = 0

``done = terminated | truncated``. A terminated step does not bootstrap; a
step truncated by a time limit bootstraps from the value of its true final
observation (``V'_t``, gymnax's ``info["final_observation"]``), and in both
cases the advantage does not run on into the next (auto-reset) episode.
Where no episode ended ``V'_t = V(s_{t+1})``.

The clipped surrogate (Schulman et al., 2017) is
``mean(-min(rho A, clip(rho, 1 - eps, 1 + eps) A))``; the value loss is
``0.5 mean((V - R)^2)``, or with clipping ``0.5 mean(max((V - R)^2,
(V_old + clip(V - V_old, -eps, eps) - R)^2))``.
"""

import jax
import jax.numpy as jnp
from jax import lax


def gae(reward: jax.Array, value: jax.Array, next_value: jax.Array,
        terminated: jax.Array, done: jax.Array, *, gamma: float,
        lam: float) -> jax.Array:
  """Advantages ``[T, ...]`` from time-major ``[T, ...]`` arrays (see the module docstring)."""
  not_terminated = 1.0 - terminated.astype(value.dtype)
  not_done = 1.0 - done.astype(value.dtype)
  delta = reward + gamma * not_terminated * next_value - value

  def backward(advantage, step):
    delta_t, not_done_t = step
    advantage = delta_t + gamma * lam * not_done_t * advantage
    return advantage, advantage

  _, advantages = lax.scan(backward, jnp.zeros_like(delta[0]),
                           (delta, not_done), reverse=True, unroll=16)
  return advantages


def clipped_surrogate(ratio: jax.Array, advantage: jax.Array,
                      clip_eps: float) -> jax.Array:
  """PPO's policy loss: ``mean(-min(ratio A, clip(ratio, 1 -+ eps) A))``."""
  clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
  return -jnp.mean(jnp.minimum(ratio * advantage, clipped * advantage))


def value_loss(value: jax.Array, old_value: jax.Array, target: jax.Array,
               clip_eps: float | None) -> jax.Array:
  """``0.5 mean((V - R)^2)``, pessimistic over the clipped change if ``clip_eps``."""
  loss = jnp.square(value - target)
  if clip_eps is not None:
    clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    loss = jnp.maximum(loss, jnp.square(clipped - target))
  return 0.5 * jnp.mean(loss)

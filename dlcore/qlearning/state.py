"""The DQN agent's state: online parameters, optimizer, target parameters.

Usage::

  state = create_dqn_state(config, obs_shape=(4,), num_actions=2, key=key)
  q = state.apply_fn({"params": state.params}, obs)          # [B, A]
  q_next = state.apply_fn({"params": state.target_params}, next_obs)

``DQNState`` is Flax's ``TrainState`` (``step`` counts gradient updates)
plus ``target_params``, a slowly updated copy of ``params`` that the TD
target bootstraps from.
"""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from dlcore.models.qnetworks import create_q_network


class DQNState(train_state.TrainState):
  target_params: Any = None


def create_optimizer(lr: float, max_grad_norm: float = 0.0):
  """Adam at ``lr``, after global-norm clipping when ``max_grad_norm > 0``."""
  if max_grad_norm > 0:
    return optax.chain(optax.clip_by_global_norm(max_grad_norm),
                       optax.adam(lr))
  return optax.adam(lr)


def create_dqn_state(config, obs_shape: Sequence[int], num_actions: int,
                     key: jax.Array) -> DQNState:
  """A fresh agent for a ``DqnConfig`` (uses ``dueling``, ``lr``, ``max_grad_norm``).

  The target network starts as a copy of the online network.
  """
  network = create_q_network(obs_shape, num_actions, dueling=config.dueling)
  params = jax.jit(network.init)(
      key, jnp.zeros((1, *obs_shape), jnp.float32))["params"]
  return DQNState.create(
      apply_fn=network.apply, params=params,
      target_params=jax.tree.map(jnp.copy, params),  # Own buffers: donatable.
      tx=create_optimizer(config.lr, config.max_grad_norm))

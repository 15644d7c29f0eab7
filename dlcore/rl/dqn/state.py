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

from dlcore import optim
from dlcore.models.qnetworks import create_q_network


class DQNState(train_state.TrainState):
  target_params: Any = None


def num_updates(config) -> int:
  """Gradient updates in a run of a ``DqnConfig``: what optimizer schedules count."""
  return max(1, (config.total_steps - config.learning_starts)
             // config.train_every)


def create_dqn_state(config, obs_shape: Sequence[int], num_actions: int,
                     key: jax.Array,
                     tx: optax.GradientTransformation | None = None) -> DQNState:
  """A fresh agent for a ``DqnConfig`` (uses ``dueling``, ``dtype``, ``optimizer``).

  ``tx`` (default: built from ``config.optimizer``) updates the online
  network; the target network starts as a copy of it.
  """
  network = create_q_network(obs_shape, num_actions, dueling=config.dueling,
                             dtype=jnp.dtype(config.dtype))
  params = jax.jit(network.init)(
      key, jnp.zeros((1, *obs_shape), jnp.float32))["params"]
  if tx is None:
    tx = optim.create_optimizer(config.optimizer, num_updates(config))
  return DQNState.create(
      apply_fn=network.apply, params=params,
      target_params=jax.tree.map(jnp.copy, params),  # Own buffers: donatable.
      tx=tx)

"""The PPO agent's state: actor-critic parameters and optimizer.

Usage::

  state = create_ppo_state(config, obs_shape=(4,), action_dim=2,
                           continuous=False, key=key)
  dist, value = state.apply_fn({"params": state.params}, obs)

``state`` is Flax's ``TrainState`` (``step`` counts gradient updates, which
the optimizer's schedules count too).
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from dlcore import optim
from dlcore.models.actor_critic import ActorCritic


def create_actor_critic(config, action_dim: int,
                        continuous: bool) -> ActorCritic:
  """The network of a ``PpoConfig`` (hidden layers, ``activation``, ``shared_torso``)."""
  return ActorCritic(action_dim, continuous=continuous,
                     hidden_sizes=(config.hidden_size,) * config.hidden_layers,
                     activation=config.activation, shared=config.shared_torso)


def create_ppo_state(config, obs_shape: Sequence[int], action_dim: int,
                     continuous: bool, key: jax.Array, num_updates: int,
                     tx: optax.GradientTransformation | None = None
                     ) -> train_state.TrainState:
  """A fresh agent; ``tx`` defaults to ``config.optimizer`` over ``num_updates`` updates."""
  network = create_actor_critic(config, action_dim, continuous)
  params = network.init(key, jnp.zeros((1, *obs_shape), jnp.float32))["params"]
  if tx is None:
    tx = optim.create_optimizer(config.optimizer, num_updates)
  return train_state.TrainState.create(apply_fn=network.apply, params=params,
                                       tx=tx)

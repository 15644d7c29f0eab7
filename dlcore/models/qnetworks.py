"""Q-networks: observations in, one action value per discrete action out.

Usage::

  net = create_q_network(obs_shape=(4,), num_actions=2, dueling=False)
  q = net.apply({"params": params}, obs)  # obs [B, *obs_shape] -> q [B, A]

``QNetwork`` is the MLP of the common DQN reference implementations (CleanRL,
PureJaxRL: 120 then 84 ReLU units); ``MinAtarQNetwork`` is the small CNN of
the MinAtar paper (Young & Tian, 2019: 16 3x3 filters, 128 ReLU units) for
``[10, 10, C]`` observations. Either ends in a plain linear head or, with
``dueling=True``, the dueling head of Wang et al. (2016):
``Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a')``.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class QHead(nn.Module):
  """Features ``[B, F]`` -> action values ``[B, num_actions]`` (plain or dueling)."""
  num_actions: int
  dueling: bool = False

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    if not self.dueling:
      return nn.Dense(self.num_actions)(features)
    value = nn.Dense(1, name="value")(features)
    advantage = nn.Dense(self.num_actions, name="advantage")(features)
    return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


class QNetwork(nn.Module):
  """MLP over flattened observations ``[B, ...]`` -> ``[B, num_actions]``."""
  num_actions: int
  hidden_sizes: Sequence[int] = (120, 84)
  dueling: bool = False

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
    for width in self.hidden_sizes:
      x = nn.relu(nn.Dense(width)(x))
    return QHead(self.num_actions, self.dueling)(x)


class MinAtarQNetwork(nn.Module):
  """CNN over ``[B, H, W, C]`` MinAtar grids -> ``[B, num_actions]``."""
  num_actions: int
  dueling: bool = False

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = nn.relu(nn.Conv(16, (3, 3), padding="VALID")(obs.astype(jnp.float32)))
    x = nn.relu(nn.Dense(128)(x.reshape((x.shape[0], -1))))
    return QHead(self.num_actions, self.dueling)(x)


def create_q_network(obs_shape: Sequence[int], num_actions: int, *,
                     dueling: bool = False,
                     hidden_sizes: Sequence[int] = (120, 84)) -> nn.Module:
  """The CNN for image-like ``[H, W, C]`` observations, else the MLP."""
  if len(obs_shape) == 3:
    return MinAtarQNetwork(num_actions, dueling=dueling)
  return QNetwork(num_actions, tuple(hidden_sizes), dueling=dueling)

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

The layers compute in ``dtype`` with ``param_dtype`` parameters; the action
values are float32 (the dueling combination is taken in float32).
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype


class QHead(nn.Module):
  """Features ``[B, F]`` -> action values ``[B, num_actions]`` (plain or dueling)."""
  num_actions: int
  dueling: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    dense = functools.partial(nn.Dense, dtype=self.dtype,
                              param_dtype=self.param_dtype)
    if not self.dueling:
      return dense(self.num_actions)(features).astype(jnp.float32)
    value = dense(1, name="value")(features).astype(jnp.float32)
    advantage = dense(self.num_actions, name="advantage")(features).astype(
        jnp.float32)
    return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)


class QNetwork(nn.Module):
  """MLP over flattened observations ``[B, ...]`` -> ``[B, num_actions]``."""
  num_actions: int
  hidden_sizes: Sequence[int] = (120, 84)
  dueling: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
    for width in self.hidden_sizes:
      x = nn.relu(nn.Dense(width, **dtypes)(x))
    return QHead(self.num_actions, self.dueling, **dtypes)(x)


class MinAtarQNetwork(nn.Module):
  """CNN over ``[B, H, W, C]`` MinAtar grids -> ``[B, num_actions]``."""
  num_actions: int
  dueling: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.relu(nn.Conv(16, (3, 3), padding="VALID", **dtypes)(
        obs.astype(jnp.float32)))
    x = nn.relu(nn.Dense(128, **dtypes)(x.reshape((x.shape[0], -1))))
    return QHead(self.num_actions, self.dueling, **dtypes)(x)


def create_q_network(obs_shape: Sequence[int], num_actions: int, *,
                     dueling: bool = False,
                     hidden_sizes: Sequence[int] = (120, 84),
                     dtype: Dtype = jnp.float32) -> nn.Module:
  """The CNN for image-like ``[H, W, C]`` observations, else the MLP.

  Either computes in ``dtype`` with float32 parameters.
  """
  if len(obs_shape) == 3:
    return MinAtarQNetwork(num_actions, dueling=dueling, dtype=dtype)
  return QNetwork(num_actions, tuple(hidden_sizes), dueling=dueling,
                  dtype=dtype)

"""The action distributions of a policy: categorical and diagonal Gaussian.

Usage::

  dist = Categorical(logits)                  # logits [B, A]
  dist = DiagonalGaussian(mean, log_std)      # mean [B, A], log_std [A]
  action = dist.sample(key)                   # [B] int32, or [B, A] float32
  dist.log_prob(action), dist.entropy()       # [B] each
  dist.mode()                                 # the greedy action

For the Gaussian, with ``d = A`` dimensions and ``sigma = exp(log_std)``::

  log p(a) = -sum_i [(a_i - mu_i)^2 / (2 sigma_i^2) + log sigma_i] - d/2 log(2 pi)
  H        = sum_i log sigma_i + d/2 (1 + log(2 pi))

Both are flax ``struct`` dataclasses (pytrees), so a network may return them
from ``apply`` inside ``jit`` and ``vmap``.
"""

import math

import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2 * math.pi)


@struct.dataclass
class Categorical:
  """A distribution over ``A`` discrete actions for each of ``B`` rows."""
  logits: jax.Array  # [B, A]

  def sample(self, key: jax.Array) -> jax.Array:
    return jax.random.categorical(key, self.logits).astype(jnp.int32)

  def log_prob(self, action: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(self.logits)
    return jnp.take_along_axis(
        log_probs, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

  def entropy(self) -> jax.Array:
    log_probs = jax.nn.log_softmax(self.logits)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)

  def mode(self) -> jax.Array:
    return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


@struct.dataclass
class DiagonalGaussian:
  """Independent normals per action dimension; ``log_std`` is shared by rows."""
  mean: jax.Array  # [B, A]
  log_std: jax.Array  # [A] (state-independent) or [B, A]

  def sample(self, key: jax.Array) -> jax.Array:
    noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
    return self.mean + jnp.exp(self.log_std) * noise

  def log_prob(self, action: jax.Array) -> jax.Array:
    z = (action - self.mean) * jnp.exp(-self.log_std)
    log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
    return -jnp.sum(0.5 * z ** 2 + log_std, axis=-1) - (
        0.5 * self.mean.shape[-1] * _LOG_2PI)

  def entropy(self) -> jax.Array:
    log_std = jnp.broadcast_to(self.log_std, self.mean.shape)
    return jnp.sum(log_std, axis=-1) + 0.5 * self.mean.shape[-1] * (
        1.0 + _LOG_2PI)

  def mode(self) -> jax.Array:
    return self.mean

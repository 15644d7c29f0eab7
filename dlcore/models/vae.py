"""A variational autoencoder (Kingma & Welling, 2014): MLP encoder and decoder.

Usage::

  vae = VAE(image_shape=(8, 8, 1), latent_dim=16)
  log_p, kl = vae.apply({"params": params}, images, key)   # ELBO = log_p - kl
  images = vae.apply({"params": params}, z, method=VAE.generate)

The encoder maps images ``[B, H, W, C]`` (values in [0, 1]) to the mean
and log-variance ``[B, latent_dim]`` of the Gaussian ``q(z | x)``; the
decoder maps ``z`` to per-pixel Bernoulli logits, or to Gaussian means
``sigmoid(output)`` whose shared standard deviation is the learned scalar
``exp(log_scale)`` (0.1 at initialisation). The prior ``p(z)`` is ``N(0, I)``.

The dense layers compute in ``dtype`` with ``param_dtype`` parameters; the
encoder's mean and log-variance, the decoder's outputs and so the ELBO
terms are float32.
"""

import functools
import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.typing import Dtype


LIKELIHOODS = ("bernoulli", "gaussian")
# The Gaussian likelihood's initial standard deviation is 0.1 (pixels are in
# [0, 1]); starting at 1 lets the KL term win and the posterior collapse.
INITIAL_LOG_SCALE = -2.302585
# ``draw_noise(key, shape)``: standard normal noise of ``shape``.
NoiseDraw = Callable[[jax.Array, tuple[int, ...]], jax.Array]


class Encoder(nn.Module):
  """Images ``[B, ...]`` -> ``(mean, log_var)``, each ``[B, latent_dim]``."""
  latent_dim: int
  hidden: Sequence[int] = (256, 128)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    dense = functools.partial(nn.Dense, dtype=self.dtype,
                              param_dtype=self.param_dtype)
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.relu(dense(width)(x))
    return (dense(self.latent_dim, name="mean")(x).astype(jnp.float32),
            dense(self.latent_dim, name="log_var")(x).astype(jnp.float32))


class Decoder(nn.Module):
  """Latents ``[B, latent_dim]`` -> float32 outputs ``[B, *image_shape]`` (pre-activation)."""
  image_shape: Sequence[int]
  hidden: Sequence[int] = (128, 256)
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    dense = functools.partial(nn.Dense, dtype=self.dtype,
                              param_dtype=self.param_dtype)
    for width in self.hidden:
      z = nn.relu(dense(width)(z))
    z = dense(math.prod(self.image_shape))(z).astype(jnp.float32)
    return z.reshape((z.shape[0], *self.image_shape))


class VAE(nn.Module):
  """Encoder + reparameterised sample + decoder; see the module docstring."""
  image_shape: Sequence[int]
  latent_dim: int = 16
  likelihood: str = "bernoulli"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def setup(self):
    if self.likelihood not in LIKELIHOODS:
      raise ValueError(f"unknown likelihood {self.likelihood!r}; choose one "
                       f"of {', '.join(LIKELIHOODS)}")
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.encoder = Encoder(self.latent_dim, **dtypes)
    self.decoder = Decoder(tuple(self.image_shape), **dtypes)
    if self.likelihood == "gaussian":
      self.log_scale = self.param(
          "log_scale", nn.initializers.constant(INITIAL_LOG_SCALE), (),
          self.param_dtype)

  def __call__(self, x: jax.Array, key: jax.Array,
               draw_noise: NoiseDraw = jax.random.normal
               ) -> tuple[jax.Array, jax.Array]:
    """The ELBO's two terms per example, ``(log p(x | z), KL(q(z | x) || p(z)))``, each ``[B]``.

    ``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)`` ``[B,
    latent_dim]`` drawn as ``draw_noise(key, shape)`` (the
    reparameterisation trick; a data-parallel step passes a draw that keeps
    this device's rows of the global batch's noise), and the closed form
    ``KL = 1/2 sum_j (exp(log_var_j) + mean_j^2 - 1 - log_var_j)``.
    Bernoulli: ``log p = -sum_pixels BCE(logits, x)`` (x in [0, 1]).
    Gaussian: ``log p = sum_pixels log N(x; mu, s^2)``, ``s = exp(log_scale)``.
    """
    mean, log_var = self.encoder(x)
    eps = draw_noise(key, mean.shape)
    z = mean + jnp.exp(0.5 * log_var) * eps
    outputs = self.decoder(z).reshape(x.shape)
    if self.likelihood == "bernoulli":
      pixel_log_p = -optax.sigmoid_binary_cross_entropy(outputs, x)
    else:
      scaled = (x - nn.sigmoid(outputs)) / jnp.exp(self.log_scale)
      pixel_log_p = (-0.5 * scaled ** 2 - self.log_scale
                     - 0.5 * jnp.log(2 * jnp.pi))
    log_p = jnp.sum(pixel_log_p.reshape((x.shape[0], -1)), -1)
    kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean ** 2 - 1.0 - log_var, -1)
    return log_p, kl

  def generate(self, z: jax.Array) -> jax.Array:
    """Mean images ``[B, *image_shape]`` in [0, 1] for latents ``z``."""
    return nn.sigmoid(self.decoder(z))

  def reconstruct(self, x: jax.Array) -> jax.Array:
    """Mean reconstructions in [0, 1], decoding the posterior mean."""
    return self.generate(self.encoder(x)[0]).reshape(x.shape)

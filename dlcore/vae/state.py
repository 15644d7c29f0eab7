"""The VAE's state: a ``TrainState`` of ``dlcore.models.vae.VAE``."""

from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from dlcore.models.vae import VAE
from dlcore.state import TrainState

VAE_ADAM = optax.adam(1e-3)


def create_vae_state(image_shape: Sequence[int], key: jax.Array, *,
                     batch_size: int = 2, latent_dim: int = 16,
                     likelihood: str = "bernoulli",
                     tx: optax.GradientTransformation = VAE_ADAM,
                     dtype=jnp.float32) -> TrainState:
  """A fresh ``TrainState`` of ``VAE`` updated by ``tx``; ``batch_size`` sizes the init input."""
  model = VAE(tuple(image_shape), latent_dim, likelihood, dtype=dtype)
  params_key, noise_key = jax.random.split(key)
  params = model.init(params_key, jnp.zeros((batch_size, *image_shape)),
                      noise_key)["params"]
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                           batch_stats={})

"""The VAE as an ``Objective``: init, the ELBO steps, and decoded prior draws to look at."""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from dlcore.objective import Objective
from dlcore.state import TrainState
from dlcore.vae.state import VAE_ADAM, create_vae_state
from dlcore.vae.steps import vae_eval_step, vae_step


def vae_objective(image_shape: Sequence[int],
                  tx: optax.GradientTransformation = VAE_ADAM, *,
                  latent_dim: int = 16, likelihood: str = "bernoulli",
                  dtype=jnp.float32, grid_size: int = 100) -> Objective:
  """The VAE as an ``Objective``; ``sample`` decodes ``grid_size`` prior draws."""
  def init(key: jax.Array, batch: Any) -> TrainState:
    del batch  # The shapes come from image_shape.
    return create_vae_state(image_shape, key, latent_dim=latent_dim,
                            likelihood=likelihood, tx=tx, dtype=dtype)

  def sample(state: TrainState, key: jax.Array) -> jax.Array:
    z = jax.random.normal(key, (grid_size, latent_dim))
    return state.apply_fn({"params": state.params}, z, method="generate")

  return Objective(init=init, train_step=vae_step, eval_step=vae_eval_step,
                   sample=sample)

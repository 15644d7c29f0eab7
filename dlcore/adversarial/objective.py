"""The GAN as an ``Objective``: init, the adversarial step, and samples to look at."""

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from dlcore.adversarial.state import (DCGAN_ADAM, GANState, create_gan_state,
                                      sample_images)
from dlcore.adversarial.steps import gan_step
from dlcore.objective import Objective

GRID_SIZE = 100  # Samples per grid: 10 x 10, labels cycling through classes.


def gan_objective(arch: str, image_shape: Sequence[int], *,
                  g_tx: optax.GradientTransformation = DCGAN_ADAM,
                  d_tx: optax.GradientTransformation = DCGAN_ADAM,
                  num_classes: int = 0, latent_dim: int = 64,
                  loss: str = "nonsaturating", n_critic: int | None = None,
                  gp_weight: float = 10.0, dtype=jnp.float32) -> Objective:
  """A GAN of ``arch`` on images ``image_shape`` in [-1, 1] (see ``gan_step``).

  ``num_classes > 0`` makes it conditional on ``batch["label"]``;
  ``sample(state, key)`` draws ``GRID_SIZE`` images in [0, 1] (labels
  ``i % num_classes`` when conditional).
  """
  def init(key: jax.Array, batch: Any) -> GANState:
    del batch  # The shapes come from image_shape and latent_dim.
    return create_gan_state(arch, image_shape, key, num_classes=num_classes,
                            latent_dim=latent_dim, g_tx=g_tx, d_tx=d_tx,
                            dtype=dtype)

  def grid(state: GANState, key: jax.Array) -> jax.Array:
    return sample_images(state, jax.random.normal(key, (GRID_SIZE, latent_dim)))

  return Objective(init=init, train_step=functools.partial(
      gan_step, loss=loss, n_critic=n_critic, gp_weight=gp_weight),
                   sample=grid)

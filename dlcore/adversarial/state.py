"""The GAN state pytree: two train states (generator, discriminator) and the step.

Usage::

  state = create_gan_state("dcgan", (8, 8, 1), key, num_classes=10)
  images = sample(state, z, labels)            # [B, 8, 8, 1] in [-1, 1]

Each network keeps its own ``dlcore.state.TrainState`` (parameters, Optax
optimizer state, BatchNorm statistics); ``step`` counts ``gan_step`` calls.
``latent_dim`` and ``num_classes`` are static fields: they fix the shapes
of the noise and labels the step draws, not values it learns.
"""

from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax

from dlcore.models.gan import create_gan_models
from dlcore.state import TrainState


class GANState(flax.struct.PyTreeNode):
  generator: TrainState
  discriminator: TrainState
  step: jax.Array
  latent_dim: int = flax.struct.field(pytree_node=False, default=64)
  num_classes: int = flax.struct.field(pytree_node=False, default=0)

  @property
  def conditional(self) -> bool:
    return self.num_classes > 0


def _init(model, tx, *inputs, key) -> TrainState:
  """A ``TrainState`` of ``model`` initialised on ``inputs`` (G: z, labels; D: x, labels)."""
  variables = model.init(key, *inputs, train=False)
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           tx=tx, batch_stats=variables.get("batch_stats", {}))


DCGAN_ADAM = optax.adam(2e-4, b1=0.5)  # Radford et al. (2016), both networks.


def create_gan_state(arch: str, image_shape: Sequence[int], key: jax.Array, *,
                     batch_size: int = 2, num_classes: int = 0,
                     latent_dim: int = 64,
                     g_tx: optax.GradientTransformation = DCGAN_ADAM,
                     d_tx: optax.GradientTransformation = DCGAN_ADAM,
                     dtype=jnp.float32) -> GANState:
  """A fresh ``GANState`` for ``arch`` ("mlp" or "dcgan") making images ``(H, W, C)``.

  ``g_tx`` and ``d_tx`` update the generator and the discriminator (by
  default DCGAN's Adam, learning rate 2e-4, beta1 0.5); the networks compute
  in ``dtype`` with float32 parameters. ``batch_size`` only sizes the
  initialisation inputs.
  """
  generator, discriminator = create_gan_models(arch, image_shape, num_classes,
                                               dtype=dtype)
  g_key, d_key = jax.random.split(key)
  z = jnp.zeros((batch_size, latent_dim))
  labels = jnp.zeros((batch_size,), jnp.int32) if num_classes else None
  g_state = _init(generator, g_tx, z, labels, key=g_key)
  images = jnp.zeros((batch_size, *image_shape))
  d_state = _init(discriminator, d_tx, images, labels, key=d_key)
  return GANState(generator=g_state, discriminator=d_state,
                  step=jnp.zeros((), jnp.int32), latent_dim=latent_dim,
                  num_classes=num_classes)


def sample(state: GANState, z: jax.Array,
           labels: jax.Array | None = None) -> jax.Array:
  """Generated images ``[B, *image_shape]`` in [-1, 1] (BatchNorm in inference mode)."""
  g = state.generator
  return g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, z,
                    labels, train=False)


def sample_images(state: GANState, z: jax.Array) -> jax.Array:
  """Images ``[N, *image_shape]`` in [0, 1] from ``z`` ``[N, latent_dim]``.

  A conditional generator is asked for the labels ``i % num_classes``,
  which ``cycling_labels`` gives: the classes by column in a 10-wide grid.
  """
  return (sample(state, z, cycling_labels(state, len(z))) + 1.0) / 2.0


def cycling_labels(state: GANState, count: int) -> jax.Array | None:
  """``[0, 1, ..., num_classes - 1, 0, ...]`` of length ``count``; None if unconditional."""
  return jnp.arange(count) % state.num_classes if state.conditional else None


__all__ = ["DCGAN_ADAM", "GANState", "create_gan_state", "cycling_labels",
           "sample", "sample_images"]

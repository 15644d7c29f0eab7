"""The CycleGAN state: four networks, each with its own optimizer, and two image pools.

Usage::

  spec = NetworkSpec(g_width=16, g_blocks=3, d_width=16, d_layers=2)
  state = create_cyclegan_state(spec, (32, 32, 3), key, tx=tx, pool_size=50)
  fake_b = translate_ab(state, real_a)        # G: A -> B, [-1, 1] images
  fake_a = translate_ba(state, real_b)        # F: B -> A

``generator_ab`` (G) maps domain A to B and ``generator_ba`` (F) maps B to
A; ``discriminator_a`` (D_A) tells real A images from F's, and
``discriminator_b`` (D_B) real B images from G's. Each is a
``dlcore.state.TrainState`` initialised from its own split of the key, so
the two generators (and the two discriminators) start different. ``pool_a``
holds earlier fakes of domain A (F's) for D_A, ``pool_b`` G's for D_B.
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.typing import Dtype

from dlcore.cyclegan.pool import ImagePool, create_pool
from dlcore.models.cyclegan import (PatchDiscriminator, ResnetGenerator,
                                    check_image_size)
from dlcore.state import TrainState

# The paper's optimizer (Adam, learning rate 2e-4, beta1 0.5).
PAPER_ADAM = optax.adam(2e-4, b1=0.5)


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
  """The sizes of CycleGAN's networks (the paper's: 64, 9, 2, 64, 3 at 256x256)."""
  g_width: int = 64
  g_blocks: int = 9
  g_downsamplings: int = 2
  d_width: int = 64
  d_layers: int = 3

  def generator(self, out_channels: int, dtype: Dtype) -> ResnetGenerator:
    return ResnetGenerator(out_channels, self.g_width, self.g_blocks,
                           self.g_downsamplings, dtype=dtype)

  def discriminator(self, dtype: Dtype) -> PatchDiscriminator:
    return PatchDiscriminator(self.d_width, self.d_layers, dtype=dtype)

  def check(self, image_shape: tuple[int, ...]) -> None:
    """A ``ValueError`` unless the networks take images of ``image_shape`` ``(H, W, C)``."""
    check_image_size(tuple(image_shape[:2]), self.g_downsamplings,
                     self.d_layers)


class CycleGanState(flax.struct.PyTreeNode):
  generator_ab: TrainState
  generator_ba: TrainState
  discriminator_a: TrainState
  discriminator_b: TrainState
  pool_a: ImagePool
  pool_b: ImagePool
  step: jax.Array


def paper_init(model: nn.Module, key: jax.Array,
               image_shape: tuple[int, ...]) -> Any:
  """``model``'s parameters: every kernel ``~ N(0, 0.02^2)``, every bias 0.

  The distribution of the models' own initialisers (the paper's
  ``init_weights("normal")``), drawn as ONE normal vector cut into the
  kernels in parameter order: XLA compiled Flax's one draw per kernel
  for a tiny generator in 39 s, this in 3 s (the project's shared 2-core
  CPU, heavily loaded).
  """
  shapes = jax.eval_shape(model.init, key, jnp.zeros((1, *image_shape)))
  paths, treedef = jax.tree_util.tree_flatten_with_path(shapes["params"])
  is_kernel = [path[-1].key == "kernel" for path, _ in paths]
  sizes = [leaf.size for (_, leaf), kernel in zip(paths, is_kernel) if kernel]
  draws = iter(jnp.split(0.02 * jax.random.normal(key, (sum(sizes),)),
                         np.cumsum(sizes)[:-1]))
  return treedef.unflatten([
      next(draws).reshape(leaf.shape).astype(leaf.dtype) if kernel
      else jnp.zeros(leaf.shape, leaf.dtype)
      for (_, leaf), kernel in zip(paths, is_kernel)])


@functools.cache
def _compiled_init(model: nn.Module, image_shape: tuple[int, ...]):
  """``paper_init`` of ``model``, compiled once and shared by both networks of a pair."""
  return jax.jit(functools.partial(paper_init, model,
                                   image_shape=image_shape))


def _init(model, tx, image_shape, key) -> TrainState:
  params = _compiled_init(model, tuple(image_shape))(key)
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                           batch_stats={})


def create_cyclegan_state(spec: NetworkSpec, image_shape: tuple[int, ...],
                          key: jax.Array, *,
                          tx: optax.GradientTransformation = PAPER_ADAM,
                          pool_size: int = 50,
                          dtype: Dtype = jnp.float32) -> CycleGanState:
  """A fresh state for images ``(H, W, C)`` of both domains.

  ``key`` splits into the init keys of G, F, D_A, D_B in that order; every
  network gets its own optimizer state of ``tx`` (built from the same
  config, so each has its own moments and schedule count).
  """
  g_key, f_key, da_key, db_key = jax.random.split(key, 4)
  generator = spec.generator(image_shape[-1], dtype)
  discriminator = spec.discriminator(dtype)
  return CycleGanState(
      generator_ab=_init(generator, tx, image_shape, g_key),
      generator_ba=_init(generator, tx, image_shape, f_key),
      discriminator_a=_init(discriminator, tx, image_shape, da_key),
      discriminator_b=_init(discriminator, tx, image_shape, db_key),
      pool_a=create_pool(pool_size, image_shape),
      pool_b=create_pool(pool_size, image_shape),
      step=jnp.zeros((), jnp.int32))


def apply(network: TrainState, images: jax.Array, params=None) -> jax.Array:
  """``network`` (a generator or discriminator) on ``images`` ``[B, H, W, C]``."""
  return network.apply_fn(
      {"params": network.params if params is None else params}, images)


def translate_ab(state: CycleGanState, images: jax.Array) -> jax.Array:
  """``G(a)``: domain-A images ``[B, H, W, C]`` in [-1, 1] as domain B."""
  return apply(state.generator_ab, images)


def translate_ba(state: CycleGanState, images: jax.Array) -> jax.Array:
  """``F(b)``: domain-B images in [-1, 1] as domain A."""
  return apply(state.generator_ba, images)

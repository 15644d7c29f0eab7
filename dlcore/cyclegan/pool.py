"""CycleGAN's image pool as a pytree: earlier generated images the discriminator may see again.

Usage::

  pool = create_pool(50, (32, 32, 3))
  pool, served, swapped = query_pool(pool, fakes, key)   # fakes [B, 32, 32, 3]

The rule of ``util/image_pool.py`` in junyanz/pytorch-CycleGAN-and-pix2pix
(Shrivastava et al., 2017), image by image in batch order: while the pool
holds fewer than ``size`` images, the new image is stored and served;
once it is full, with probability 1/2 (a uniform draw ``u > 0.5``) the
image at a uniformly drawn index ``i`` is served and the new image takes
its place, else the new image is served and the pool is unchanged. A later
image of the batch can thus be served an image stored by an earlier one.
Both draws (``u`` and ``i`` for every image) come from ``key``; the pool
is part of the training state, so it is compiled, checkpointed and
reproducible. A pool of size 0 serves the new images.
"""

import flax.struct
import jax
import jax.numpy as jnp
from jax import lax


class ImagePool(flax.struct.PyTreeNode):
  images: jax.Array  # [size, H, W, C] float32; rows >= count are zeros.
  count: jax.Array   # int32 scalar: images stored so far (at most size).

  @property
  def size(self) -> int:
    return self.images.shape[0]


def create_pool(size: int, image_shape: tuple[int, ...]) -> ImagePool:
  """An empty pool of ``size`` images of ``image_shape`` ``(H, W, C)``."""
  return ImagePool(jnp.zeros((size, *image_shape), jnp.float32),
                   jnp.zeros((), jnp.int32))


def pool_draws(key: jax.Array, batch_size: int,
               size: int) -> tuple[jax.Array, jax.Array]:
  """``(u [B] ~ U[0, 1), i [B] ~ U{0..size-1})``: each image's swap draw and index."""
  swap_key, index_key = jax.random.split(key)
  return (jax.random.uniform(swap_key, (batch_size,)),
          jax.random.randint(index_key, (batch_size,), 0, size))


def query_pool(pool: ImagePool, images: jax.Array,
               key: jax.Array) -> tuple[ImagePool, jax.Array, jax.Array]:
  """``(new pool, served [B, H, W, C], swapped [B] bool)`` for new ``images`` ``[B, H, W, C]``.

  ``swapped[j]``: image ``j`` was stored and an older one served in its
  place (only once the pool is full). See the module docstring.
  """
  images = images.astype(jnp.float32)
  if pool.size == 0:
    return pool, images, jnp.zeros(images.shape[:1], bool)
  draws = pool_draws(key, images.shape[0], pool.size)

  def one(pool: ImagePool, inputs):
    image, u, index = inputs
    full = pool.count >= pool.size
    swap = full & (u > 0.5)
    slot = jnp.where(full, index, pool.count)
    old = pool.images[slot]
    stored = jnp.where(full & ~swap, old, image)
    pool = ImagePool(lax.dynamic_update_index_in_dim(pool.images, stored, slot,
                                                     0),
                     pool.count + (~full).astype(jnp.int32))
    return pool, (jnp.where(swap, old, image), swap)

  pool, (served, swapped) = lax.scan(one, pool, (images, *draws))
  return pool, served, swapped

"""GAN generators and discriminators: the classic MLP pair and DCGAN.

Usage::

  generator = DCGANGenerator(image_shape=(8, 8, 1), num_classes=10)
  images = generator.apply(variables, z, labels, train=True,
                           mutable=["batch_stats"])       # [B, 8, 8, 1]
  logits = DCGANDiscriminator(num_classes=10).apply(d_vars, images, labels)

Generators map noise ``z [B, latent]`` to images ``[B, *image_shape]`` in
[-1, 1] (tanh output). Discriminators map images to one logit per example
``[B]``. With ``num_classes > 0`` both are class-conditional on integer
labels ``[B]``: the generator appends a learned label embedding to ``z``;
the discriminator is a projection discriminator (Miyato & Koyama, 2018),
``D(x, y) = w . phi(x) + b + embed(y) . phi(x)``. With ``num_classes == 0``
the labels are ignored (pass ``None``).

The DCGAN generator (Radford et al., 2016) projects ``z`` to a small
``base x base`` map, then doubles it with stride-2 transposed convolutions
(BatchNorm + ReLU between them) up to the image size; it can make the
square sizes in ``DCGAN_SIZES``. Its BatchNorm takes ``axis_name`` for
statistics synchronised across devices. The DCGAN discriminator halves the
image with stride-2 convolutions and LeakyReLU(0.2); it has no BatchNorm,
so per-example gradient penalties (WGAN-GP) stay well defined.

Every network computes in ``dtype`` with ``param_dtype`` parameters
(BatchNorm's statistics stay float32); images and logits are returned in
float32, the generator's tanh taken in float32.
"""

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype


# Image side -> (side of the projected map, stride-2 upsamplings, width): the
# width is the channel count of the generator's first map and of the
# discriminator's last one, small for 8x8 so that digits trains on a CPU.
DCGAN_SIZES: dict[int, tuple[int, int, int]] = {
    8: (2, 2, 64), 28: (7, 2, 128), 32: (4, 3, 256)}


def check_dcgan_shape(image_shape: Sequence[int]) -> None:
  """Raises ``ValueError`` unless DCGAN can make ``image_shape`` ``(H, W, C)``."""
  height, width = image_shape[0], image_shape[1]
  if height != width or height not in DCGAN_SIZES:
    sizes = ", ".join(f"{s}x{s}" for s in DCGAN_SIZES)
    raise ValueError(
        f"the dcgan architecture cannot make {height}x{width} images; it "
        f"supports {sizes} (use the mlp architecture for other sizes)")


def _with_label_embedding(z: jax.Array, labels: jax.Array | None,
                          num_classes: int, features: int,
                          **dtypes: Dtype) -> jax.Array:
  """``z`` with a learned ``[B, features]`` label embedding appended.

  ``dtypes`` (``dtype``, ``param_dtype``) go to the ``nn.Embed``.
  """
  if num_classes == 0:
    return z
  embedding = nn.Embed(num_classes, features, **dtypes)(labels)
  return jnp.concatenate([z.astype(embedding.dtype), embedding], -1)


class ProjectionHead(nn.Module):
  """``[B, F]`` features -> ``[B]`` float32 logits, projected onto a label embedding."""
  num_classes: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array, labels: jax.Array | None) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    logits = nn.Dense(1, **dtypes)(features)[:, 0]
    if self.num_classes != 0:
      embedding = nn.Embed(self.num_classes, features.shape[-1], **dtypes)(
          labels)
      logits = logits + jnp.sum(embedding * features, axis=-1)
    return logits.astype(jnp.float32)


class MLPGenerator(nn.Module):
  """The classic GAN generator: ReLU MLP from noise to a tanh output."""
  image_shape: Sequence[int]
  hidden: Sequence[int] = (256, 256)
  num_classes: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = False, axis_name: str | None = None) -> jax.Array:
    del train, axis_name  # No BatchNorm.
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = _with_label_embedding(z, labels, self.num_classes, 16, **dtypes)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, **dtypes)(x))
    x = nn.Dense(math.prod(self.image_shape), **dtypes)(x)
    return jnp.tanh(x.astype(jnp.float32)).reshape(
        (z.shape[0], *self.image_shape))


class MLPDiscriminator(nn.Module):
  """The classic GAN discriminator: LeakyReLU MLP to one logit."""
  hidden: Sequence[int] = (256, 256)
  num_classes: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None,
               train: bool = False, axis_name: str | None = None) -> jax.Array:
    del train, axis_name
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.leaky_relu(nn.Dense(width, **dtypes)(x), 0.2)
    return ProjectionHead(self.num_classes, **dtypes)(x, labels)


class DCGANGenerator(nn.Module):
  """DCGAN generator: dense projection, transposed convolutions, BatchNorm, ReLU, tanh.

  ``width`` is the channel count of the first map; each upsampling halves it.
  """
  image_shape: Sequence[int]
  width: int = 128
  num_classes: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, labels: jax.Array | None = None,
               train: bool = False, axis_name: str | None = None) -> jax.Array:
    check_dcgan_shape(self.image_shape)
    base, upsamplings, _ = DCGAN_SIZES[self.image_shape[0]]
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, axis_name=axis_name, **dtypes)
    upsample = functools.partial(nn.ConvTranspose, kernel_size=(4, 4),
                                 strides=(2, 2), padding="SAME", **dtypes)
    x = _with_label_embedding(z, labels, self.num_classes, 32, **dtypes)
    x = nn.Dense(base * base * self.width, use_bias=False, **dtypes)(x)
    x = nn.relu(norm()(x.reshape((-1, base, base, self.width))))
    for i in range(upsamplings - 1):
      x = nn.relu(norm()(upsample(self.width // 2 ** (i + 1),
                                  use_bias=False)(x)))
    x = upsample(self.image_shape[-1])(x)
    return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
  """DCGAN discriminator: stride-2 convolutions with LeakyReLU(0.2), one logit.

  Halves the image ``num_downsamplings`` times (the last one with ``width``
  channels; earlier ones with half as many each), then a projection head.
  """
  width: int = 128
  num_downsamplings: int = 2
  num_classes: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array | None = None,
               train: bool = False, axis_name: str | None = None) -> jax.Array:
    del train, axis_name  # No BatchNorm.
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    for i in reversed(range(self.num_downsamplings)):
      x = nn.Conv(self.width // 2 ** i, (4, 4), (2, 2), padding="SAME",
                  **dtypes)(x)
      x = nn.leaky_relu(x, 0.2)
    return ProjectionHead(self.num_classes, **dtypes)(
        x.reshape((x.shape[0], -1)), labels)


ARCHITECTURES = ("dcgan", "mlp")


def create_gan_models(arch: str, image_shape: Sequence[int],
                      num_classes: int = 0, dtype: Dtype = jnp.float32
                      ) -> tuple[nn.Module, nn.Module]:
  """``(generator, discriminator)`` of ``arch`` for images ``(H, W, C)``.

  Both compute in ``dtype`` with float32 parameters.
  """
  image_shape = tuple(image_shape)
  if arch == "mlp":
    return (MLPGenerator(image_shape, num_classes=num_classes, dtype=dtype),
            MLPDiscriminator(num_classes=num_classes, dtype=dtype))
  if arch == "dcgan":
    check_dcgan_shape(image_shape)
    _, downsamplings, width = DCGAN_SIZES[image_shape[0]]
    return (DCGANGenerator(image_shape, width, num_classes, dtype=dtype),
            DCGANDiscriminator(width, downsamplings, num_classes, dtype=dtype))
  raise ValueError(f"unknown architecture {arch!r}; choose one of "
                   f"{', '.join(ARCHITECTURES)}")

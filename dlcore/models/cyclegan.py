"""CycleGAN's networks (Zhu et al., 2017): the ResNet generator and the PatchGAN discriminator.

Usage::

  generator = ResnetGenerator(out_channels=3, width=16, num_blocks=3)
  discriminator = PatchDiscriminator(width=16, num_layers=2)
  check_image_size((32, 32), num_downsamplings=2, num_layers=2)
  y = generator.apply(variables, x)          # [B, H, W, 3] in [-1, 1]
  logits = discriminator.apply(variables, x)  # [B, H', W'] real/fake logits

Both follow ``models/networks.py`` of junyanz/pytorch-CycleGAN-and-pix2pix
with instance normalisation (no learned scale or shift, as its default
``InstanceNorm2d(affine=False)``), convolution biases, and weights drawn
from ``N(0, 0.02^2)`` with zero biases (its ``init_weights("normal")``).
Inputs are ``[B, H, W, C]`` images in [-1, 1]; every layer computes in
``dtype`` with ``param_dtype`` (float32) parameters; outputs are float32.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype


_WEIGHT_INIT = nn.initializers.normal(0.02)


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """``[B, H, W, C] -> [B, H + 2 pad, W + 2 pad, C]`` mirrored at the edges (edge not repeated)."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def instance_norm(dtype: Dtype) -> nn.Module:
  """Per-example, per-channel normalisation over ``H, W`` (eps 1e-5), no affine part."""
  return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False,
                         dtype=dtype)


class ResnetBlock(nn.Module):
  """``x + [pad 1, conv 3x3, norm, ReLU, pad 1, conv 3x3, norm](x)``."""
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(nn.Conv, x.shape[-1], (3, 3), padding="VALID",
                             kernel_init=_WEIGHT_INIT, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    y = nn.relu(instance_norm(self.dtype)(conv()(reflect_pad(x, 1))))
    y = instance_norm(self.dtype)(conv()(reflect_pad(y, 1)))
    return x + y


class ResnetGenerator(nn.Module):
  """The paper's generator: ``c7s1-w, d2w, d4w, R4w x num_blocks, u2w, uw, c7s1-out, tanh``.

  ``c7s1-k``: reflection pad 3, conv 7x7 (stride 1, ``k`` filters), norm,
  ReLU; ``dk``: conv 3x3 stride 2 (zero pad 1), norm, ReLU, halving ``H``
  and ``W``; ``Rk``: a ``ResnetBlock``; ``uk``: transposed conv 3x3 stride
  2 (``SAME``), norm, ReLU, doubling ``H`` and ``W``. With
  ``num_downsamplings = n`` the widths are ``w, 2w, ..., 2^n w`` and ``H``,
  ``W`` must be multiples of ``2^n`` (``check_image_size``). Output: ``[B,
  H, W, out_channels]`` in [-1, 1].
  """
  out_channels: int
  width: int = 64
  num_blocks: int = 9
  num_downsamplings: int = 2
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(nn.Conv, kernel_init=_WEIGHT_INIT,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    norm_relu = lambda y: nn.relu(instance_norm(self.dtype)(y))
    x = norm_relu(conv(self.width, (7, 7), padding="VALID")(reflect_pad(x, 3)))
    for i in range(self.num_downsamplings):
      x = norm_relu(conv(self.width * 2 ** (i + 1), (3, 3), strides=(2, 2),
                         padding=((1, 1), (1, 1)))(x))
    for _ in range(self.num_blocks):
      x = ResnetBlock(dtype=self.dtype, param_dtype=self.param_dtype)(x)
    for i in reversed(range(self.num_downsamplings)):
      x = norm_relu(nn.ConvTranspose(
          self.width * 2 ** i, (3, 3), strides=(2, 2), padding="SAME",
          kernel_init=_WEIGHT_INIT, dtype=self.dtype,
          param_dtype=self.param_dtype)(x))
    x = conv(self.out_channels, (7, 7), padding="VALID")(reflect_pad(x, 3))
    return jnp.tanh(x).astype(jnp.float32)


class PatchDiscriminator(nn.Module):
  """The PatchGAN discriminator: one real/fake logit per overlapping patch.

  ``C64-C128-...``: conv 4x4 stride 2 (zero pad 1) with ``width`` filters
  and leaky ReLU (0.2), then ``num_layers - 1`` more of them with doubled
  widths (at most ``8 width``) and norm, one conv 4x4 stride 1 with norm
  and leaky ReLU, and a final conv 4x4 stride 1 to one channel. With
  ``num_layers = 3`` this is the paper's 70x70 PatchGAN. Output: ``[B, H',
  W']`` float32 logits, ``H' = H / 2^num_layers - 2``.
  """
  width: int = 64
  num_layers: int = 3
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(nn.Conv, kernel_size=(4, 4),
                             padding=((1, 1), (1, 1)),
                             kernel_init=_WEIGHT_INIT, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    leaky = lambda y: nn.leaky_relu(y, 0.2)
    x = leaky(conv(self.width, strides=(2, 2))(x))
    for i in range(1, self.num_layers + 1):
      stride = 2 if i < self.num_layers else 1
      x = conv(self.width * min(2 ** i, 8), strides=(stride, stride))(x)
      x = leaky(instance_norm(self.dtype)(x))
    x = conv(1, strides=(1, 1))(x)
    return x[..., 0].astype(jnp.float32)


def patch_grid_size(size: int, num_layers: int) -> int:
  """Patches along a side of ``size`` pixels: ``size / 2^num_layers - 2`` (floors at each stride)."""
  for _ in range(num_layers):
    size = (size + 2 - 4) // 2 + 1
  return size - 2


def check_image_size(image_size: tuple[int, int], num_downsamplings: int,
                     num_layers: int) -> None:
  """A ``ValueError`` unless both networks take ``(H, W)`` images.

  The generator needs ``H`` and ``W`` divisible by ``2^num_downsamplings``
  (so that up-sampling restores the size); the discriminator at least one
  patch per side.
  """
  factor = 2 ** num_downsamplings
  height, width = image_size
  if height % factor or width % factor:
    raise ValueError(
        f"images of {height}x{width} pixels do not fit a generator with "
        f"{num_downsamplings} down-samplings: height and width must be "
        f"multiples of {factor}")
  if min(patch_grid_size(height, num_layers),
         patch_grid_size(width, num_layers)) < 1:
    raise ValueError(
        f"images of {height}x{width} pixels are too small for a PatchGAN "
        f"of {num_layers} layers, which needs at least "
        f"{2 ** num_layers * 3} pixels a side")

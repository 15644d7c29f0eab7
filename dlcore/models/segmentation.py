"""Fully convolutional segmentation networks: FCN (Long et al., 2015) and U-Net (Ronneberger et al., 2015).

Both map images ``[B, H, W, C]`` to float32 per-pixel class scores
``[B, H, W, num_classes]``, with no dense layer, so parameters trained on
one image size apply to any other that the downsampling divides:

- ``FCN`` downsamples twice (stride 4): ``H`` and ``W`` must be multiples
  of 4;
- ``UNet`` downsamples ``depth`` times: ``H`` and ``W`` must be multiples
  of ``2 ** depth``.

A size that does not fit raises ``ValueError`` naming the rule
(``size_multiple`` is each model's). Convolutions are
followed by BatchNorm (statistics in ``batch_stats``; pass ``axis_name``
under ``pmap``/``shard_map`` to synchronise them) and ReLU. Every layer
computes in ``dtype`` with ``param_dtype`` parameters; the scores are
float32.
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from dlcore.models.resnet import BasicBlock

TRUNKS = ("cnn", "resnet20")


def check_image_size(model: nn.Module, height: int, width: int) -> None:
  """Raises ``ValueError`` unless ``model`` takes ``height`` x ``width`` images."""
  multiple = model.size_multiple
  if height % multiple or width % multiple:
    raise ValueError(
        f"{type(model).__name__} takes images whose height and width are "
        f"multiples of {multiple}, got {height}x{width}")


class FCN(nn.Module):
  """FCN-8s-style network: a classifier trunk, 1x1 scores, learned upsampling with skips.

  The trunk yields feature maps at strides 1, 2 and 4:

  - ``"resnet20"``: ResNet-20's stem and three stages of three basic blocks
    (``width``, ``2 width``, ``4 width`` filters; option-A shortcuts);
  - ``"cnn"``: the Flax MNIST CNN's two convolutions (``2 width``, ``4
    width`` filters) with their 2x2 average pools.

  The deepest map is scored by a 1x1 convolution, upsampled 2x by a
  learned 4x4 transposed convolution and added to the 1x1 scores of the
  next shallower map, twice, giving scores at input resolution (the
  FCN-8s idea with this trunk's three strides).
  """
  num_classes: int
  trunk: str = "resnet20"
  width: int = 16
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  size_multiple = 4
  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               axis_name: str | None = None) -> jax.Array:
    check_image_size(self, *x.shape[1:3])
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, axis_name=axis_name,
                             **dtypes)
    features = (_resnet20_trunk(x, self.width, norm, dtypes)
                if self.trunk == "resnet20" else _cnn_trunk(x, self.width, dtypes))
    score = functools.partial(nn.Conv, self.num_classes, (1, 1), **dtypes)
    scores = score()(features[-1])
    for skip in reversed(features[:-1]):
      scores = nn.ConvTranspose(self.num_classes, (4, 4), strides=(2, 2),
                                padding="SAME", **dtypes)(scores)
      scores = scores + score()(skip)
    return scores.astype(jnp.float32)


def _resnet20_trunk(x, width: int, norm: Callable[..., nn.Module],
                    dtypes) -> list[jax.Array]:
  """ResNet-20 without its head: the outputs of its three stages."""
  x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
              **dtypes)(x)
  x = nn.relu(norm()(x))
  features = []
  for stage in range(3):
    for block in range(3):
      strides = 2 if stage > 0 and block == 0 else 1
      x = BasicBlock(width * 2 ** stage, strides, False, **dtypes)(x, norm=norm)
    features.append(x)
  return features


def _cnn_trunk(x, width: int, dtypes) -> list[jax.Array]:
  """The Flax MNIST CNN without its dense layers: maps at strides 1, 2, 4."""
  pool = lambda y: nn.avg_pool(y, window_shape=(2, 2), strides=(2, 2))
  first = nn.relu(nn.Conv(2 * width, (3, 3), **dtypes)(x))
  second = nn.relu(nn.Conv(4 * width, (3, 3), **dtypes)(pool(first)))
  return [first, pool(first), pool(second)]


class UNet(nn.Module):
  """U-Net: ``depth`` downsamplings, ``width * 2**i`` filters at level ``i``.

  Encoder level ``i`` (``i < depth``): two 3x3 convolutions (each with
  BatchNorm and ReLU), kept as a skip, then 2x2 max-pooling; the bottom
  level has ``width * 2**depth`` filters. Each decoder level upsamples 2x
  with a learned 2x2 transposed convolution, concatenates the skip of its
  level and applies two 3x3 convolutions; a 1x1 convolution gives the
  scores.
  """
  num_classes: int
  depth: int = 3
  width: int = 16
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def size_multiple(self) -> int:
    return 2 ** self.depth

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               axis_name: str | None = None) -> jax.Array:
    check_image_size(self, *x.shape[1:3])
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, axis_name=axis_name,
                             **dtypes)

    def block(y, features: int):
      for _ in range(2):
        y = nn.Conv(features, (3, 3), use_bias=False, **dtypes)(y)
        y = nn.relu(norm()(y))
      return y

    skips = []
    for level in range(self.depth):
      x = block(x, self.width * 2 ** level)
      skips.append(x)
      x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = block(x, self.width * 2 ** self.depth)
    for level in reversed(range(self.depth)):
      x = nn.ConvTranspose(self.width * 2 ** level, (2, 2), strides=(2, 2),
                           **dtypes)(x)
      x = block(jnp.concatenate([x, skips[level]], axis=-1),
                self.width * 2 ** level)
    return nn.Conv(self.num_classes, (1, 1), **dtypes)(x).astype(jnp.float32)


SEGMENTERS = ("fcn", "unet")


def create_segmenter(name: str, num_classes: int, *, width: int = 16,
                     depth: int = 3, trunk: str = "resnet20",
                     dtype: Dtype = jnp.float32) -> nn.Module:
  """``fcn`` (on ``trunk``) or ``unet`` (of ``depth``), ``width`` filters at the top level."""
  if name == "fcn":
    return FCN(num_classes, trunk=trunk, width=width, dtype=dtype)
  if name == "unet":
    return UNet(num_classes, depth=depth, width=width, dtype=dtype)
  raise ValueError(f"unknown segmenter {name!r}; the registered ones are "
                   f"{', '.join(SEGMENTERS)}")

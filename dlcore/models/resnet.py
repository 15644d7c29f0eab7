"""Residual networks with BatchNorm (He et al., 2016): CIFAR and ImageNet layouts.

ResNet-20 is the paper's CIFAR network: a 3x3 stem of 16 filters and three
stages of three basic blocks (16, 32, 64 filters), with parameter-free
"option A" shortcuts (stride-2 subsampling and zero-padded channels);
0.27M parameters. ResNet-18 is the common CIFAR adaptation of the ImageNet
network: a 3x3 stem of 64 filters, no max-pool, four stages of two blocks
(64, 128, 256, 512) with 1x1-convolution shortcuts; 11.2M parameters.

``ImageNetResNet`` is the ImageNet network in torchvision's layout, so
that ``dlcore.from_torch`` can load torchvision's weights leaf for leaf: a
7x7 stride-2 stem (``conv1``, ``bn1``), a 3x3 stride-2 max-pool, four
stages ``layer1``..``layer4`` of blocks ``layerI_J`` (ResNet-18: two
``BasicBlock`` s per stage; ResNet-50: 3, 4, 6, 3 ``Bottleneck`` s with the
stride on the 3x3 convolution, "v1.5"), each with a ``downsample_conv`` /
``downsample_bn`` projection where the shape changes, global average
pooling and the head ``fc``; BatchNorm momentum 0.9 (torchvision's 0.1)
and epsilon 1e-5. 11.7M and 25.6M parameters with 1,000 classes.

Input ``[B, H, W, C]``; output ``[B, num_classes]``. BatchNorm statistics
live in the ``batch_stats`` collection; pass ``axis_name`` to average them
across devices under ``pmap``/``shard_map`` (synchronised BatchNorm).
Every layer computes in ``dtype`` with ``param_dtype`` parameters
(BatchNorm's statistics stay float32); the logits are float32.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection."""
  features: int
  strides: int
  projection_shortcut: bool
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, norm):
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    padded = functools.partial(conv, padding=((1, 1), (1, 1)))
    y = nn.relu(norm()(padded(self.features, (3, 3), self.strides)(x)))
    y = norm(scale_init=nn.initializers.zeros)(padded(self.features, (3, 3))(y))
    if x.shape[-1] != self.features or self.strides != 1:
      if self.projection_shortcut:
        x = conv(self.features, (1, 1), self.strides)(x)
        x = norm()(x)
      else:  # Option A: subsample, then zero-pad the new channels.
        x = x[:, ::self.strides, ::self.strides, :]
        pad = self.features - x.shape[-1]
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (pad // 2, pad - pad // 2)))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """A CIFAR ResNet; see the module docstring."""
  stage_sizes: Sequence[int]
  stage_features: Sequence[int]
  projection_shortcut: bool
  num_classes: int = 10
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def head_name(self) -> str:
    """The top-level module that maps features to classes (fine-tuning's ``HEAD``)."""
    return "Dense_0"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               axis_name: str | None = None) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, axis_name=axis_name,
                             **dtypes)
    x = nn.Conv(self.stage_features[0], (3, 3), padding=((1, 1), (1, 1)),
                use_bias=False, **dtypes)(x)
    x = nn.relu(norm()(x))
    for i, (blocks, features) in enumerate(zip(self.stage_sizes,
                                               self.stage_features)):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = BasicBlock(features, strides, self.projection_shortcut,
                       **dtypes)(x, norm=norm)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, **dtypes)(x).astype(jnp.float32)


ResNet20 = functools.partial(ResNet, stage_sizes=(3, 3, 3),
                             stage_features=(16, 32, 64),
                             projection_shortcut=False)
ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2),
                             stage_features=(64, 128, 256, 512),
                             projection_shortcut=True)


class TorchvisionBlock(nn.Module):
  """torchvision's ``BasicBlock`` (two 3x3) or ``Bottleneck`` (1x1, 3x3, 1x1 x4).

  Submodules are named as torchvision's (``conv1``, ``bn1``, ...,
  ``downsample_conv``, ``downsample_bn``); the last BatchNorm's scale starts
  at zero, so a fresh block is the identity on its shortcut.
  """
  features: int  # torchvision's ``planes``.
  strides: int
  bottleneck: bool
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, *, norm):
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    if self.bottleneck:
      widths, kernels = (self.features, self.features, 4 * self.features), (1, 3, 1)
    else:
      widths, kernels = (self.features, self.features), (3, 3)
    strided = 2 if self.bottleneck else 1  # The 3x3 convolution.
    y = x
    for i, (width, kernel) in enumerate(zip(widths, kernels), 1):
      pad = kernel // 2
      y = conv(width, (kernel, kernel), self.strides if i == strided else 1,
               padding=((pad, pad), (pad, pad)), name=f"conv{i}")(y)
      last = i == len(widths)
      y = norm(name=f"bn{i}",
               scale_init=nn.initializers.zeros if last else
               nn.initializers.ones)(y)
      if not last:
        y = nn.relu(y)
    if x.shape[-1] != widths[-1] or self.strides != 1:
      x = conv(widths[-1], (1, 1), self.strides, name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x)
    return nn.relu(x + y)


class ImageNetResNet(nn.Module):
  """The ImageNet ResNet in torchvision's layout; see the module docstring."""
  stage_sizes: Sequence[int]
  bottleneck: bool
  num_classes: int = 1000
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def head_name(self) -> str:
    """The top-level module that maps features to classes (fine-tuning's ``HEAD``)."""
    return "fc"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               axis_name: str | None = None) -> jax.Array:
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=0.9, epsilon=1e-5, axis_name=axis_name,
                             **dtypes)
    x = nn.Conv(64, (7, 7), 2, padding=((3, 3), (3, 3)), use_bias=False,
                name="conv1", **dtypes)(x)
    x = nn.relu(norm(name="bn1")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        x = TorchvisionBlock(64 * 2**i, 2 if i > 0 and j == 0 else 1,
                             self.bottleneck, name=f"layer{i + 1}_{j}",
                             **dtypes)(x, norm=norm)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, name="fc",
                    **dtypes)(x).astype(jnp.float32)


ImageNetResNet18 = functools.partial(ImageNetResNet, stage_sizes=(2, 2, 2, 2),
                                     bottleneck=False)
ImageNetResNet50 = functools.partial(ImageNetResNet, stage_sizes=(3, 4, 6, 3),
                                     bottleneck=True)

"""CIFAR-style residual networks with BatchNorm (He et al., 2016).

ResNet-20 is the paper's CIFAR network: a 3x3 stem of 16 filters and three
stages of three basic blocks (16, 32, 64 filters), with parameter-free
"option A" shortcuts (stride-2 subsampling and zero-padded channels);
0.27M parameters. ResNet-18 is the common CIFAR adaptation of the ImageNet
network: a 3x3 stem of 64 filters, no max-pool, four stages of two blocks
(64, 128, 256, 512) with 1x1-convolution shortcuts; 11.2M parameters.

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

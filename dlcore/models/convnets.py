"""Small convolutional classifiers: LeNet-5 and the Flax MNIST CNN."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from dlcore.models.patch_conv import PatchConv, avg_pool_2x2


def _avg_pool(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))


class LeNet5(nn.Module):
  """LeNet-5 (LeCun et al., 1998): tanh units and average-pooling subsampling.

  C1 6@5x5 (SAME, as is usual for 28x28 MNIST) -> S2 avg-pool 2 -> C3 16@5x5
  (VALID) -> S4 avg-pool 2 -> F5 120 -> F6 84 -> logits.
  Input ``[B, H, W, C]`` with H, W >= 12; output ``[B, num_classes]``.
  For 28x28 inputs the C3 map is 10x10 and S4 5x5, as in the paper.
  C1 to S4 run channel-major with ``PatchConv`` (1.6x faster steps on CPU
  than ``nn.Conv``; same math and parameters, named ``Conv_0`` (C1) and
  ``Conv_1`` (C3)); F5 reads S4 flattened in NHWC order, as after ``nn.Conv``.
  Every layer computes in ``dtype`` with ``param_dtype`` parameters; the
  logits are float32.
  """
  num_classes: int = 10
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def head_name(self) -> str:
    """The top-level module that maps features to classes (fine-tuning's ``HEAD``)."""
    return "Dense_2"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if min(x.shape[1:3]) < 12:
      raise ValueError(
          f"lenet5 needs images of at least 12x12 pixels, got "
          f"{x.shape[1]}x{x.shape[2]}; use cnn, mlp or resnet20 for small images")
    x = jnp.moveaxis(x, -1, 0)  # [C, B, H, W]
    x = avg_pool_2x2(jnp.tanh(PatchConv(6, (5, 5), "SAME", **dtypes,
                                        name="Conv_0")(x)))
    x = avg_pool_2x2(jnp.tanh(PatchConv(16, (5, 5), "VALID", **dtypes,
                                        name="Conv_1")(x)))
    x = jnp.transpose(x, (1, 2, 3, 0)).reshape((x.shape[1], -1))
    x = nn.tanh(nn.Dense(120, **dtypes)(x))
    x = nn.tanh(nn.Dense(84, **dtypes)(x))
    return nn.Dense(self.num_classes, **dtypes)(x).astype(jnp.float32)


class CNN(nn.Module):
  """The Flax MNIST example's CNN.

  Conv 32@3x3 -> ReLU -> avg-pool 2 -> Conv 64@3x3 -> ReLU -> avg-pool 2
  -> Dense 256 -> ReLU -> logits. Input ``[B, H, W, C]``; output
  ``[B, num_classes]``. ``features`` returns the 256-d penultimate layer.
  Every layer computes in ``dtype`` with ``param_dtype`` parameters; both
  outputs are float32.
  """
  num_classes: int = 10
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def head_name(self) -> str:
    """The top-level module that maps features to classes (fine-tuning's ``HEAD``)."""
    return "head"

  def setup(self):
    conv = functools.partial(nn.Conv, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    dense = functools.partial(nn.Dense, dtype=self.dtype,
                              param_dtype=self.param_dtype)
    self.conv1 = conv(32, (3, 3))
    self.conv2 = conv(64, (3, 3))
    self.dense = dense(256)
    self.head = dense(self.num_classes)

  def features(self, x: jax.Array) -> jax.Array:
    """Penultimate-layer activations ``[B, 256]``."""
    x = _avg_pool(nn.relu(self.conv1(x)))
    x = _avg_pool(nn.relu(self.conv2(x)))
    return nn.relu(self.dense(x.reshape((x.shape[0], -1)))).astype(jnp.float32)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    return self.head(self.features(x)).astype(jnp.float32)

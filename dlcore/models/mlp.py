"""Multi-layer perceptron."""

from typing import Callable, Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """Dense layers with an activation between them.

  Input ``[B, ...]`` (flattened to ``[B, D]``); output ``[B, num_outputs]``.
  """
  hidden_sizes: Sequence[int] = (256, 128)
  num_outputs: int = 10
  activation: Callable[[jax.Array], jax.Array] = nn.relu

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # No dropout or BatchNorm.
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden_sizes:
      x = self.activation(nn.Dense(width)(x))
    return nn.Dense(self.num_outputs)(x)

"""Multi-layer perceptron."""

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype


class MLP(nn.Module):
  """Dense layers with an activation between them.

  Input ``[B, ...]`` (flattened to ``[B, D]``); output ``[B, num_outputs]``
  in float32. The layers compute in ``dtype`` with ``param_dtype``
  parameters.
  """
  hidden_sizes: Sequence[int] = (256, 128)
  num_outputs: int = 10
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def head_name(self) -> str:
    """The top-level module that maps features to classes (fine-tuning's ``HEAD``)."""
    return f"Dense_{len(self.hidden_sizes)}"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # No dropout or BatchNorm.
    dense = functools.partial(nn.Dense, dtype=self.dtype,
                              param_dtype=self.param_dtype)
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden_sizes:
      x = self.activation(dense(width)(x))
    return dense(self.num_outputs)(x).astype(jnp.float32)

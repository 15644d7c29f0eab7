"""Recurrent sequence classifiers over SimpleRNN, LSTM and GRU cells.

Input ``[B, T, F]``, or an image ``[B, H, W, C]`` read row by row as a
sequence of ``H`` steps of ``W*C`` features; output ``[B, num_classes]``
from the last hidden state. The LSTM runs as ``dlcore.models.lstm.LSTM``
(``nn.OptimizedLSTMCell``'s parameters and results, a faster backward
pass); the other cells under ``nn.RNN``, from a zero state in ``dtype``.
Every layer computes in ``dtype`` with ``param_dtype`` parameters; the
logits are float32.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from dlcore.models.lstm import LSTM

CELLS = {  # Run under nn.RNN; "lstm" is dlcore's LSTM.
    "rnn": nn.SimpleCell,
    "gru": nn.GRUCell,
}


def as_sequence(x: jax.Array) -> jax.Array:
  """``[B, H, W, C] -> [B, H, W*C]``; sequences ``[B, T, F]`` pass through."""
  return x.reshape(x.shape[:2] + (-1,)) if x.ndim == 4 else x


class RecurrentClassifier(nn.Module):
  """A single recurrent layer followed by a linear read-out."""
  cell: str = "lstm"
  hidden_size: int = 128
  num_classes: int = 10
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @property
  def head_name(self) -> str:
    """The top-level module that maps features to classes (fine-tuning's ``HEAD``)."""
    return "Dense_0"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = as_sequence(x)
    if self.cell == "lstm":
      # Named as nn.RNN's cell was: the same parameter tree and initial values.
      _, hidden = LSTM(self.hidden_size, **dtypes,
                       name="OptimizedLSTMCell_0")(x)
    else:
      # The cells' own zero carry is in param_dtype; the scan needs dtype.
      zeros = jnp.zeros((x.shape[0], self.hidden_size), self.dtype)
      cell = CELLS[self.cell](features=self.hidden_size, **dtypes)
      hidden, _ = nn.RNN(cell, return_carry=True)(x, initial_carry=zeros)
    return nn.Dense(self.num_classes, **dtypes)(hidden).astype(jnp.float32)

"""Recurrent sequence classifiers over SimpleRNN, LSTM and GRU cells.

Input ``[B, T, F]``, or an image ``[B, H, W, C]`` read row by row as a
sequence of ``H`` steps of ``W*C`` features; output ``[B, num_classes]``
from the last hidden state.
"""

import flax.linen as nn
import jax

CELLS = {
    "rnn": nn.SimpleCell,
    "lstm": nn.OptimizedLSTMCell,
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

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    cell = CELLS[self.cell](features=self.hidden_size)
    carry, _ = nn.RNN(cell, return_carry=True)(as_sequence(x))
    hidden = carry[1] if self.cell == "lstm" else carry  # LSTM carry is (c, h).
    return nn.Dense(self.num_classes)(hidden)

"""Recurrent sequence classifiers over SimpleRNN, LSTM and GRU cells.

Input ``[B, T, F]``, or an image ``[B, H, W, C]`` read row by row as a
sequence of ``H`` steps of ``W*C`` features; output ``[B, num_classes]``
from the last hidden state. The LSTM runs as ``dlcore.models.lstm.LSTM``
(``nn.OptimizedLSTMCell``'s parameters and results, a faster backward
pass); the other cells under ``nn.RNN``.
"""

import flax.linen as nn
import jax

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

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    if self.cell == "lstm":
      # Named as nn.RNN's cell was: the same parameter tree and initial values.
      _, hidden = LSTM(self.hidden_size, name="OptimizedLSTMCell_0")(
          as_sequence(x))
    else:
      cell = CELLS[self.cell](features=self.hidden_size)
      hidden, _ = nn.RNN(cell, return_carry=True)(as_sequence(x))
    return nn.Dense(self.num_classes)(hidden)

"""Recurrent sequence classifiers: SimpleRNN, LSTM and GRU layers.

Usage::

  model = RecurrentClassifier(cell="lstm", hidden_size=128, num_classes=10)
  logits = model.apply(variables, x)   # x [B, T, F] or images [B, H, W, C]

Images ``[B, H, W, C]`` are read row by row as a sequence of ``H`` steps of
``W*C`` features; the output ``[B, num_classes]`` is a linear read-out of
the last hidden state.

``Recurrence`` computes every step's input projection before the loop, as
cuDNN and PyTorch do: one ``[B*T, F] x [F, G*H]`` matmul (with the gates'
biases) for all steps, and only the ``[B, H] x [H, G*H]`` recurrent matmul
inside the ``lax.scan`` over time. The math is that of Flax's cells
(``nn.SimpleCell``, ``nn.OptimizedLSTMCell``, ``nn.GRUCell``) with the same
initialisers; gates are concatenated along the last axis in the order given
in each step function.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def simple_step(hidden, projected, kernel, _):
  """``h' = tanh(x W_x + b + h W_h)``; one gate."""
  return jnp.tanh(projected + hidden @ kernel)


def lstm_step(carry, projected, kernel, _):
  """Gates in order ``i, f, g, o``; carry ``(c, h)``.

  ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``, ``h' = sigmoid(o) * tanh(c')``
  with each gate ``x W_x + b + h W_h``.
  """
  cell, hidden = carry
  i, f, g, o = jnp.split(projected + hidden @ kernel, 4, axis=-1)
  cell = nn.sigmoid(f) * cell + nn.sigmoid(i) * jnp.tanh(g)
  return cell, nn.sigmoid(o) * jnp.tanh(cell)


def gru_step(hidden, projected, kernel, candidate_bias):
  """Gates in order ``r, z, n``; ``h' = (1 - z) * n + z * h``.

  ``r = sigmoid(x W_xr + b_r + h W_hr)``, ``z`` likewise, and the candidate
  ``n = tanh(x W_xn + b_n + r * (h W_hn + b_hn))`` with its own recurrent
  bias ``b_hn``, as in Flax's ``GRUCell``.
  """
  x_r, x_z, x_n = jnp.split(projected, 3, axis=-1)
  h_r, h_z, h_n = jnp.split(hidden @ kernel, 3, axis=-1)
  reset = nn.sigmoid(x_r + h_r)
  update = nn.sigmoid(x_z + h_z)
  candidate = jnp.tanh(x_n + reset * (h_n + candidate_bias))
  return (1.0 - update) * candidate + update * hidden


CELLS = {  # name: (step function, number of gates)
    "rnn": (simple_step, 1),
    "lstm": (lstm_step, 4),
    "gru": (gru_step, 3),
}


def gatewise(init: nn.initializers.Initializer, gates: int):
  """Initialises a ``[..., gates * H]`` kernel as ``gates`` blocks of ``init``."""
  def initialise(key, shape, dtype=jnp.float32):
    block = shape[:-1] + (shape[-1] // gates,)
    keys = jax.random.split(key, gates)
    return jnp.concatenate([init(k, block, dtype) for k in keys], axis=-1)
  return initialise


class Recurrence(nn.Module):
  """One recurrent layer over ``[B, T, F]``; returns the last hidden ``[B, H]``.

  Parameters: ``input`` (kernel ``[F, G*H]``, bias ``[G*H]``),
  ``recurrent_kernel`` ``[H, G*H]`` (each ``[H, H]`` block orthogonal) and,
  for the GRU, ``candidate_bias`` ``[H]``.
  """
  cell: str = "lstm"
  hidden_size: int = 128

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    step, gates = CELLS[self.cell]
    width = gates * self.hidden_size
    projected = nn.Dense(width, name="input")(x)  # [B, T, G*H], all steps.
    kernel = self.param("recurrent_kernel",
                        gatewise(nn.initializers.orthogonal(), gates),
                        (self.hidden_size, width)).astype(projected.dtype)
    candidate_bias = (self.param("candidate_bias", nn.initializers.zeros_init(),
                                 (self.hidden_size,)).astype(projected.dtype)
                      if self.cell == "gru" else None)
    hidden = jnp.zeros((x.shape[0], self.hidden_size), projected.dtype)
    carry = (hidden, hidden) if self.cell == "lstm" else hidden
    carry, _ = jax.lax.scan(
        lambda carry, p: (step(carry, p, kernel, candidate_bias), None), carry,
        jnp.swapaxes(projected, 0, 1))
    return carry[1] if self.cell == "lstm" else carry


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
    hidden = Recurrence(self.cell, self.hidden_size)(as_sequence(x))
    return nn.Dense(self.num_classes)(hidden)

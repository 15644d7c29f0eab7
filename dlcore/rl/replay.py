"""A fixed-capacity circular replay buffer as pure functions over a pytree.

Usage::

  buffer = replay.init(example_transition, capacity=10_000)
  buffer = replay.add(buffer, transitions)       # leaves [n, ...], n <= capacity
  if replay.can_sample(buffer, batch_size): ...  # a traced bool inside jit
  batch = replay.sample(buffer, key, batch_size)  # leaves [batch_size, ...]

The state is a ``ReplayState`` pytree (``storage`` with leaves
``[capacity, ...]``, the next write ``position`` and the filled ``size``),
so the functions work inside ``jit``, ``scan`` and ``vmap`` (one buffer per
seed). ``add`` writes row ``(position + i) % capacity`` for the ``i``-th new
item, overwriting the oldest items once full. Called on its own, ``add``
donates the old state so the storage is updated in place rather than copied;
inside a compiled ``scan`` XLA updates the carried storage in place anyway.
``sample`` draws uniformly with replacement from the ``size`` written rows
only, never from unwritten slots.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayState:
  storage: Any  # pytree of [capacity, ...] arrays
  position: jax.Array  # int32 [], the row the next item goes to
  size: jax.Array  # int32 [], rows written so far (at most capacity)

  @property
  def capacity(self) -> int:
    return jax.tree.leaves(self.storage)[0].shape[0]


def init(example: Any, capacity: int) -> ReplayState:
  """An empty buffer for items shaped like ``example`` (one item, no batch axis)."""
  storage = jax.tree.map(
      lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype),
      example)
  return ReplayState(storage, jnp.zeros((), jnp.int32),
                     jnp.zeros((), jnp.int32))


@functools.partial(jax.jit, donate_argnums=0)
def add(state: ReplayState, items: Any) -> ReplayState:
  """Writes ``items`` (leaves ``[n, ...]``, ``n <= capacity``) after the newest row."""
  capacity = state.capacity
  n = jax.tree.leaves(items)[0].shape[0]
  rows = (state.position + jnp.arange(n)) % capacity
  storage = jax.tree.map(lambda s, x: s.at[rows].set(x.astype(s.dtype)),
                         state.storage, items)
  return ReplayState(storage, (state.position + n) % capacity,
                     jnp.minimum(state.size + n, capacity))


def can_sample(state: ReplayState, batch_size: int) -> jax.Array:
  """Whether at least ``batch_size`` rows have been written."""
  return state.size >= batch_size


def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Any:
  """``batch_size`` items drawn uniformly with replacement from written rows."""
  rows = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
  return jax.tree.map(lambda s: s[rows], state.storage)

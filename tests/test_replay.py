"""The circular replay buffer: wrap-around, sampling only written rows, donation, vmap."""

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.rl import replay


def _items(start, n):
  """``n`` items whose fields all equal their index ``start + i``."""
  ids = jnp.arange(start, start + n)
  return {"id": ids.astype(jnp.int32), "obs": jnp.stack([ids, -ids], -1)
          .astype(jnp.float32)}


def _empty(capacity):
  return replay.init({"id": jnp.zeros((), jnp.int32),
                      "obs": jnp.zeros(2, jnp.float32)}, capacity)


def test_add_wraps_around_and_overwrites_the_oldest():
  buffer = _empty(5)
  buffer = replay.add(buffer, _items(0, 3))
  assert int(buffer.size) == 3 and int(buffer.position) == 3
  buffer = replay.add(buffer, _items(3, 4))  # ids 3..6: rows 3, 4, 0, 1.
  assert int(buffer.size) == 5 and int(buffer.position) == 2
  np.testing.assert_array_equal(buffer.storage["id"], [5, 6, 2, 3, 4])
  np.testing.assert_array_equal(buffer.storage["obs"][:, 1], [-5, -6, -2, -3, -4])


def test_sample_never_returns_unwritten_rows():
  buffer = replay.add(_empty(100), _items(1, 7))  # ids 1..7, 93 empty rows.
  assert not bool(replay.can_sample(buffer, 8))
  assert bool(replay.can_sample(buffer, 7))
  batch = replay.sample(buffer, jax.random.PRNGKey(0), 10_000)
  ids = np.asarray(batch["id"])
  assert set(ids.tolist()) == set(range(1, 8))  # All written, none empty (0).
  np.testing.assert_array_equal(batch["obs"][:, 0], ids)  # Rows stay whole.


def test_add_donates_the_old_state():
  buffer = _empty(4)
  storage = buffer.storage["obs"]
  replay.add(buffer, _items(0, 2))
  assert storage.is_deleted()


def test_works_per_seed_under_vmap_and_scan():
  def fill(start):
    def body(buffer, i):
      return replay.add(buffer, {"id": (start + 2 * i + jnp.arange(2))
                                       .astype(jnp.int32),
                                 "obs": jnp.zeros((2, 2))}), None
    buffer, _ = jax.lax.scan(body, _empty(4), jnp.arange(3))
    return buffer
  buffers = jax.jit(jax.vmap(fill))(jnp.array([0, 100]))
  np.testing.assert_array_equal(buffers.storage["id"],
                                [[4, 5, 2, 3], [104, 105, 102, 103]])
  np.testing.assert_array_equal(buffers.size, [4, 4])

"""Mergeable evaluation metrics: sums that add across batches and devices.

An evaluation step returns a dict of metric pytrees; ``merge`` adds two such
dicts leaf by leaf, ``lax.psum`` adds them across devices, and ``compute``
turns the total into host floats only at the end. Because every metric is
a sum, the result over a split does not depend on how it was batched or
sharded, and padding rows count nothing when their mask is 0.

Usage::

  def eval_step(state, batch, key=None, *, axis_name=None):
    loss = per_example_loss(...)                            # [B]
    return {"loss": Average.of(loss, batch["mask"])}

  total = None
  for batch in batches:
    total = merge(total, eval_fn(state, batch))
  compute(total)                                            # {"loss": 0.31}

``Average`` is CLU's ``metrics.Average`` reduced to what dlcore needs (CLU's
metric writers pull in TensorFlow); a per-pixel average is ``Average.of``
over the pixels' values and mask, and a confusion matrix is one more
pytree of counts whose ``compute`` derives IoUs.
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


class Average(flax.struct.PyTreeNode):
  """``total / count``: a masked mean that merges exactly by adding both."""
  total: jax.Array
  count: jax.Array

  @classmethod
  def of(cls, values: jax.Array, mask: jax.Array | None = None) -> "Average":
    """The average of ``values`` ``[B, ...]`` where ``mask`` ``[B]`` (or ``values``' shape) is 1."""
    values = values.astype(jnp.float32)
    if mask is None:
      mask = jnp.ones(values.shape, jnp.float32)
    mask = jnp.broadcast_to(
        mask.reshape(mask.shape + (1,) * (values.ndim - mask.ndim)),
        values.shape).astype(jnp.float32)
    return cls(total=jnp.sum(values * mask), count=jnp.sum(mask))

  def compute(self) -> float:
    return float(self.total) / float(self.count)


Collection = dict[str, Any]


def merge(a: Collection | None, b: Collection) -> Collection:
  """``a + b`` leaf by leaf (``a`` may be None: the first batch)."""
  return b if a is None else jax.tree.map(jnp.add, a, b)


def compute(collection: Collection) -> dict[str, float]:
  """``{name: value}`` on the host, each metric's ``compute()`` of its total."""
  collection = jax.tree.map(np.asarray, collection)
  return {name: metric.compute() for name, metric in collection.items()}

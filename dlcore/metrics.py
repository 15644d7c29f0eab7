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
over the pixels' values and mask. ``ConfusionMatrix`` is a pytree of
integer pixel counts whose ``compute`` derives pixel accuracy and IoUs; a
metric whose ``compute`` returns a dict contributes its entries to
``compute``'s result under their own names.
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


class ConfusionMatrix(flax.struct.PyTreeNode):
  """``counts[t, p]``: the pixels of true class ``t`` predicted as ``p``, ``[K, K]`` int32.

  Counts add exactly across batches, devices and hosts (int32: up to 2**31
  pixels), so IoUs computed from the total are those of the whole split,
  not averages of per-batch IoUs. ``compute`` gives, with ``TP_k =
  counts[k, k]`` and ``union_k = sum_p counts[k, p] + sum_t counts[t, k] -
  TP_k``:

  - ``pixel_accuracy = sum_k TP_k / sum counts``;
  - ``iou_k = TP_k / union_k`` for every class ``k`` with ``union_k > 0``;
  - ``miou``: the mean of those ``iou_k``.

  A class absent from both the ground truth and the predictions (``union_k
  = 0``, IoU 0/0) has no IoU: it is left out of the ``iou_k`` and of the
  mean. A class absent from the ground truth but predicted somewhere has
  IoU 0 and counts in the mean (its false positives are errors).
  """
  counts: jax.Array

  @classmethod
  def of(cls, labels: jax.Array, predictions: jax.Array, num_classes: int,
         mask: jax.Array | None = None) -> "ConfusionMatrix":
    """Counts of ``labels`` against ``predictions`` (equal shapes ``[B, ...]``).

    Pixels count where ``mask`` (``[B]`` or the labels' shape) is nonzero
    and the label is in ``[0, num_classes)``, so an ignore label such as
    255 and padded examples count nothing.
    """
    valid = (labels >= 0) & (labels < num_classes)
    if mask is not None:
      mask = mask.reshape(mask.shape + (1,) * (labels.ndim - mask.ndim))
      valid &= mask > 0
    index = jnp.where(valid, labels * num_classes + predictions, 0)
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[
        index.ravel()].add(valid.ravel().astype(jnp.int32))
    return cls(counts=counts.reshape(num_classes, num_classes))

  def compute(self) -> dict[str, float]:
    counts = np.asarray(self.counts, np.int64)
    hits = np.diag(counts)
    union = counts.sum(0) + counts.sum(1) - hits
    ious = {f"iou_{k}": float(hits[k] / union[k])
            for k in range(len(counts)) if union[k] > 0}
    return {"pixel_accuracy": float(hits.sum() / counts.sum()),
            "miou": float(np.mean(list(ious.values()))), **ious}


Collection = dict[str, Any]


def merge(a: Collection | None, b: Collection) -> Collection:
  """``a + b`` leaf by leaf (``a`` may be None: the first batch)."""
  return b if a is None else jax.tree.map(jnp.add, a, b)


def compute(collection: Collection) -> dict[str, float]:
  """``{name: value}`` on the host, each metric's ``compute()`` of its total.

  A metric whose ``compute()`` is a dict (``ConfusionMatrix``) adds its
  entries by their own names.
  """
  collection = jax.tree.map(np.asarray, collection)
  results = {}
  for name, metric in collection.items():
    value = metric.compute()
    results.update(value if isinstance(value, dict) else {name: value})
  return results

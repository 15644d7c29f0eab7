"""Batching in-memory arrays: reproducible shuffling, exact evaluation, prefetch.

Training batches for step ``s`` depend only on ``(seed, s)``: epoch
``s // steps_per_epoch`` is a permutation drawn from
``numpy.random.default_rng([seed, epoch])``, and the last incomplete batch
of each epoch is dropped. A run resumed at step ``s`` therefore sees exactly
the batches an uninterrupted run sees.

Evaluation batches cover every example exactly once: the last batch is
padded to full size and carries ``mask`` (1 for real examples, 0 for
padding), so compiled shapes stay fixed and nothing is dropped.
"""

import collections
import itertools
from typing import Iterator

import jax
import numpy as np

from dlcore.data.datasets import Split
from dlcore.errors import ConfigError

Batch = dict[str, np.ndarray]


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  if batch_size < 1 or batch_size > num_examples:
    raise ConfigError(
        f"batch size {batch_size} must be between 1 and the {num_examples} "
        "training examples")
  return num_examples // batch_size


def train_batches(split: Split, batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[Batch]:
  """Endless shuffled batches ``{"image": [B,...], "label": [B]}`` from ``start_step``."""
  per_epoch = steps_per_epoch(len(split), batch_size)
  for step in itertools.count(start_step):
    epoch, index = divmod(step, per_epoch)
    if index == 0 or step == start_step:
      order = np.random.default_rng([seed, epoch]).permutation(len(split))
    rows = order[index * batch_size:(index + 1) * batch_size]
    yield {"image": split.images[rows], "label": split.labels[rows]}


def eval_batches(split: Split, batch_size: int) -> Iterator[Batch]:
  """Batches in order covering every example once, the last one padded and masked."""
  n = len(split)
  for start in range(0, n, batch_size):
    rows = np.arange(start, start + batch_size)
    mask = rows < n
    rows = np.where(mask, rows, 0)
    yield {"image": split.images[rows], "label": split.labels[rows],
           "mask": mask.astype(np.float32)}


def prefetch(batches: Iterator[Batch], size: int = 2,
             sharding: jax.sharding.Sharding | None = None) -> Iterator[Batch]:
  """Puts the next ``size`` batches on device ahead of their use."""
  queue = collections.deque()
  for batch in batches:
    queue.append(jax.device_put(batch, sharding))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()

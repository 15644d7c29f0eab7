"""Tasks carved from one dataset: a subset of its classes, a K-shot training set.

Usage::

  data = load_dataset("digits28.npz")
  target = select_classes(data, parse_classes("5,6,7,8,9"))  # labels 0..4
  target = few_shot(target, 10, seed=0)   # 10 training images per class

``select_classes`` keeps, in both splits, the examples of the listed classes
and relabels them ``0..k-1`` in the listed order. ``few_shot`` keeps ``K``
training examples of every class (the test split is untouched), drawn without
replacement by ``numpy.random.default_rng([seed, class])``: the same seed
always gives the same subset, and a K-shot subset holds the first K images of
every larger one of the same seed (the draws are prefixes of one permutation
per class).
"""

import dataclasses

import numpy as np

from dlcore.data.datasets import Dataset, Split
from dlcore.errors import ConfigError


def parse_classes(text: str) -> tuple[int, ...]:
  """``"5,6,7"`` -> ``(5, 6, 7)``; ``""`` -> ``()`` (all classes)."""
  if not text.strip():
    return ()
  try:
    return tuple(int(part) for part in text.split(","))
  except ValueError:
    raise ConfigError(f"option classes takes class numbers separated by "
                      f"commas such as 5,6,7, got {text!r}") from None


def select_classes(data: Dataset, classes: tuple[int, ...]) -> Dataset:
  """``data`` with only ``classes``, relabelled ``0..len(classes)-1`` in that order."""
  if not classes:
    return data
  repeated = sorted({c for c in classes if classes.count(c) > 1})
  if repeated:
    raise ConfigError(f"option classes repeats class "
                      f"{', '.join(map(str, repeated))}; name each class once")
  present = set(np.unique(data.train.labels).tolist())
  missing = [c for c in classes if c not in present]
  if missing:
    raise ConfigError(
        f"option classes names class {', '.join(map(str, missing))} that "
        f"{data.name} has no training example of; its classes are "
        f"{min(present)}..{max(present)}")
  new_label = np.full(max(data.num_classes, max(classes) + 1), -1, np.int32)
  new_label[list(classes)] = np.arange(len(classes), dtype=np.int32)

  def keep(split: Split) -> Split:
    rows = np.flatnonzero(np.isin(split.labels, classes))
    return Split(split.images[rows], new_label[split.labels[rows]])

  return dataclasses.replace(data, train=keep(data.train),
                             test=keep(data.test), num_classes=len(classes))


def few_shot(data: Dataset, per_class: int, seed: int) -> Dataset:
  """``data`` with ``per_class`` training examples of each class (0: all of them).

  The kept rows stay in their original order; see the module docstring for
  how they are drawn.
  """
  if per_class == 0:
    return data
  if per_class < 0:
    raise ConfigError(f"option train_per_class must be at least 0 (0: every "
                      f"image), got {per_class}")
  labels = data.train.labels
  counts = np.bincount(labels, minlength=data.num_classes)
  smallest = int(np.argmin(counts))
  if per_class > counts[smallest]:
    raise ConfigError(
        f"option train_per_class must be at most {counts[smallest]}, the "
        f"training images of the smallest class ({smallest}), got {per_class}")
  rows = np.sort(np.concatenate([
      np.random.default_rng([seed, c]).permutation(
          np.flatnonzero(labels == c))[:per_class]
      for c in range(data.num_classes)]))
  train = Split(data.train.images[rows], labels[rows])
  return dataclasses.replace(data, train=train)

"""Datasets (TFDS by name, the embedded ``digits``, ``.npz`` files) and batching."""

from dlcore.data.datasets import Dataset, Split, load_dataset
from dlcore.data.digits import Digits
from dlcore.data.pipeline import (eval_batches, prefetch, steps_per_epoch,
                                  train_batches)

__all__ = ["Dataset", "Digits", "Split", "eval_batches", "load_dataset",
           "prefetch", "steps_per_epoch", "train_batches"]

"""Datasets (TFDS by name, the embedded ``digits`` and ``digit_canvases``, ``.npz`` files) and batching."""

from dlcore.data.datasets import Dataset, Split, load_dataset
from dlcore.data.digits import Digits
from dlcore.data.segmentation import IGNORE_LABEL, load_segmentation_dataset
from dlcore.data.pipeline import (eval_batches, prefetch, steps_per_epoch,
                                  train_batches)
from dlcore.data.subsets import few_shot, parse_classes, select_classes

__all__ = ["IGNORE_LABEL", "Dataset", "Digits", "Split", "eval_batches",
           "few_shot", "load_dataset", "load_segmentation_dataset",
           "parse_classes", "prefetch", "select_classes",
           "steps_per_epoch", "train_batches"]

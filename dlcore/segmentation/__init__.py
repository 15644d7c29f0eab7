"""Semantic segmentation: per-pixel steps, joint augmentation, overlays and the run."""

from dlcore.segmentation.augment import AugmentConfig, augment
from dlcore.segmentation.steps import (eval_step, pixel_losses,
                                       segmentation_objective, train_step)
from dlcore.segmentation.train import SegmentConfig, train_and_evaluate

__all__ = ["AugmentConfig", "SegmentConfig", "augment", "eval_step",
           "pixel_losses", "segmentation_objective", "train_and_evaluate",
           "train_step"]

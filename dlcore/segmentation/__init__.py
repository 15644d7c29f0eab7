"""Semantic segmentation.

  dlcore.segmentation.config     ``SegmentConfig``.
  dlcore.segmentation.augment    ``AugmentConfig`` and ``augment``: images and masks together.
  dlcore.segmentation.steps      ``train_step``, ``eval_step``: per-pixel loss, exact mIoU.
  dlcore.segmentation.overlays   predictions overlaid on images.
  dlcore.segmentation.objective  ``segmentation_objective``.
  dlcore.segmentation.train      ``train_and_evaluate(config)``.
"""

from dlcore.segmentation.augment import AugmentConfig, augment
from dlcore.segmentation.config import SegmentConfig
from dlcore.segmentation.objective import segmentation_objective
from dlcore.segmentation.steps import eval_step, pixel_losses, train_step
from dlcore.segmentation.train import train_and_evaluate

__all__ = ["AugmentConfig", "SegmentConfig", "augment", "eval_step",
           "pixel_losses", "segmentation_objective", "train_and_evaluate",
           "train_step"]

"""``SegmentConfig``: the options of ``experiments/segment.py``."""

import dataclasses

from dlcore import experiment, optim
from dlcore.config import field
from dlcore.models import SEGMENTERS
from dlcore.models.segmentation import TRUNKS
from dlcore.segmentation.augment import AugmentConfig


@dataclasses.dataclass(frozen=True)
class SegmentConfig(experiment.EpochConfig):
  """Options of ``experiments/segment.py`` (defaults: the measured digit-canvases run)."""
  dataset: str = field("digit_canvases", "digit_canvases (embedded), a TFDS "
                       "dataset with image and segmentation_mask features, "
                       "or a path to an .npz file with masks y_* [N, H, W]")
  image_size: int = field(0, "resize images (bilinearly) and masks "
                          "(nearest-neighbour) to this square size; 0: keep "
                          "them (they must then share one size)",
                          valid="[0, inf)")
  model: str = field("unet", "network", choices=SEGMENTERS)
  width: int = field(8, "filters at full resolution (fcn on resnet20: "
                     "the stem's; unet: the first level's)", valid="[1, inf)")
  depth: int = field(3, "unet: downsamplings (image sides must be "
                     "multiples of 2**depth)", valid="[1, inf)")
  trunk: str = field("resnet20", "fcn: the classifier trunk", choices=TRUNKS)
  epochs: int = field(5, "passes over the training set", valid="[1, inf)")
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                            warmup_steps=100), "the optimizer")
  class_weights: tuple[float, ...] = field(
      (), "per-class weights of the pixel loss (default: all 1)",
      valid="[0, inf)")
  augment: AugmentConfig = field(AugmentConfig(), "training augmentation")
  batch_size: int = field(32, "global training batch size (split evenly "
                          "over the devices)", valid="[1, inf)")
  sample_every: int | None = field(None, "steps between prediction grids (0: "
                                   "at the end only; default: once per "
                                   "epoch)", valid="[0, inf)")
  workdir: str = field("runs/segment", "where metrics, plots and "
                       "checkpoints go")

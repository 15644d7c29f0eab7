"""Training and evaluating a segmentation network: ``train_and_evaluate(config, workdir)``.

Writes into ``workdir`` what ``dlcore.loop`` writes (``metrics.jsonl`` with
``test_pixel_accuracy``, ``test_miou`` and ``test_iou_<k>`` at every
evaluation, ``tensorboard/``, ``model.txt``, ``checkpoints/``, and
``samples_<step>.png``: test images, then ground truth, then predictions
overlaid in colour), plus ``summary.json`` (final ``test_miou``,
``test_pixel_accuracy``, ``per_class_iou`` with ``null`` for a class absent
from both truth and predictions, training seconds, the config) and
``curves.png``.
"""

import dataclasses
import pathlib
from typing import Any

from dlcore import experiment, optim
from dlcore.config import check_ranges, field
from dlcore.data import load_segmentation_dataset, steps_per_epoch
from dlcore.errors import ConfigError
from dlcore.models import SEGMENTERS, check_image_size, create_segmenter
from dlcore.models.segmentation import TRUNKS
from dlcore.segmentation.augment import AugmentConfig
from dlcore.segmentation.steps import segmentation_objective

NUM_SAMPLES = 10  # One row of the sample grid per view.


@dataclasses.dataclass(frozen=True)
class SegmentConfig(experiment.ExperimentConfig):
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
      (), "per-class weights of the pixel loss (default: all 1)")
  augment: AugmentConfig = field(AugmentConfig(), "training augmentation")
  batch_size: int = field(32, "global training batch size (split evenly "
                          "over the devices)", valid="[1, inf)")
  log_every: int = field(0, "steps between metrics records (0: once per "
                         "epoch)")
  eval_every: int = field(0, "steps between test evaluations (0: once per "
                          "epoch)")
  sample_every: int = field(0, "steps between prediction grids (0: once per "
                            "epoch)")
  checkpoint_every: int = field(0, "steps between checkpoints (0: once per "
                                "epoch)")
  workdir: str = field("runs/segment", "where metrics, plots and "
                       "checkpoints go")


def _check(config: SegmentConfig, num_classes: int) -> None:
  if config.class_weights and (len(config.class_weights) != num_classes or
                               min(config.class_weights) < 0):
    raise ConfigError(
        f"option class_weights must be {num_classes} non-negative numbers, "
        f"one per class, got {list(config.class_weights)}")


def train_and_evaluate(config: SegmentConfig,
                       workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns the summary.

  ``workdir``, when given, replaces ``config.workdir``.
  """
  if workdir is not None:
    config = dataclasses.replace(config, workdir=str(workdir))
  check_ranges(config)
  data = load_segmentation_dataset(config.dataset, config.data_dir,
                                   config.image_size or None)
  _check(config, data.num_classes)
  model = create_segmenter(config.model, data.num_classes, width=config.width,
                           depth=config.depth, trunk=config.trunk,
                           dtype=experiment.compute_dtype(config))
  check_image_size(model, *data.image_shape[:2])
  per_epoch = steps_per_epoch(len(data.train), config.batch_size)
  num_steps = per_epoch * config.epochs
  every = dataclasses.replace(config, **{
      name: getattr(config, name) or per_epoch
      for name in ("log_every", "eval_every", "sample_every",
                   "checkpoint_every")})
  objective = segmentation_objective(
      model, optim.create_optimizer(config.optimizer, num_steps),
      class_weights=config.class_weights, augment_config=config.augment,
      frozen=config.optimizer.freeze,
      sample_images=data.test.images[:NUM_SAMPLES],
      sample_masks=data.test.labels[:NUM_SAMPLES])
  _, history = experiment.fit(
      objective, data, config, num_steps=num_steps, every=every,
      steps_per_epoch=per_epoch, desc=f"{config.model} on {data.name}")
  final = next(r for r in reversed(history.records) if "test_miou" in r)
  return experiment.finish(config, history, {
      "test_miou": final["test_miou"],
      "test_pixel_accuracy": final["test_pixel_accuracy"],
      "per_class_iou": [final.get(f"test_iou_{k}")
                        for k in range(data.num_classes)],
      "num_classes": data.num_classes, "epochs": final["epoch"],
      "num_train": len(data.train), "num_test": len(data.test)},
      x="epoch", panels={
          "loss": ["train_loss", "test_loss"],
          "accuracy": ["train_pixel_accuracy", "test_pixel_accuracy",
                       "test_miou"]})

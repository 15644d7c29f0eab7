"""Training and evaluating a segmentation network: ``train_and_evaluate(config)``.

Writes into ``config.workdir`` what ``dlcore.loop`` writes
(``metrics.jsonl`` with ``test_pixel_accuracy``, ``test_miou`` and
``test_iou_<k>`` at every evaluation, ``tensorboard/``, ``model.txt``,
``checkpoints/``, and ``samples_<step>.png``: test images, then ground
truth, then predictions overlaid in colour), plus ``summary.json`` (final
``test_miou``, ``test_pixel_accuracy``, ``per_class_iou`` with ``null`` for
a class absent from both truth and predictions, training seconds, the
config) and ``curves.png``.
"""

from typing import Any

from dlcore import experiment
from dlcore.config import validate
from dlcore.data import load_segmentation_dataset, steps_per_epoch
from dlcore.errors import ConfigError
from dlcore.models import create_segmenter
from dlcore.segmentation.config import SegmentConfig
from dlcore.segmentation.objective import segmentation_objective

NUM_SAMPLES = 10  # One row of the sample grid per view.


def _check(config: SegmentConfig, num_classes: int, image_shape) -> None:
  """The options against the data, before anything is written."""
  if config.class_weights and len(config.class_weights) != num_classes:
    raise ConfigError(
        f"option class_weights must be {num_classes} non-negative numbers, "
        f"one per class, got {list(config.class_weights)}")
  if config.class_weights and not sum(config.class_weights) > 0:
    raise ConfigError("option class_weights must give some class a positive "
                      "weight, got all zeros")
  height, width = image_shape[:2]
  multiple = 2 ** config.depth if config.model == "unet" else 4
  if height % multiple or width % multiple:
    depth = f" of option depth {config.depth}" if config.model == "unet" else ""
    raise ConfigError(
        f"option model {config.model}{depth} takes images whose height and "
        f"width are multiples of {multiple}, got {height}x{width}; choose "
        f"option image_size a multiple of {multiple} or a shallower model")
  if config.augment.max_shift >= min(height, width):
    raise ConfigError(
        f"option augment.max_shift {config.augment.max_shift} can move "
        f"{height}x{width} images entirely out of their frame; choose a "
        f"shift below {min(height, width)}")


def train_and_evaluate(config: SegmentConfig) -> dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns the summary (also ``summary.json``)."""
  validate(config)
  data = load_segmentation_dataset(config.dataset, config.data_dir,
                                   config.image_size or None)
  _check(config, data.num_classes, data.image_shape)
  model = create_segmenter(config.model, data.num_classes, width=config.width,
                           depth=config.depth, trunk=config.trunk,
                           dtype=experiment.compute_dtype(config))
  per_epoch = steps_per_epoch(len(data.train), config.batch_size)
  num_steps = per_epoch * config.epochs
  plan = experiment.plan(
      config, num_steps=num_steps, steps_per_epoch=per_epoch,
      batch_size=config.batch_size,
      optimizers={"optimizer": (config.optimizer, None, num_steps)})
  objective = segmentation_objective(
      model, plan.optimizers["optimizer"],
      class_weights=config.class_weights, augment_config=config.augment,
      frozen=config.optimizer.freeze,
      sample_images=data.test.images[:NUM_SAMPLES],
      sample_masks=data.test.labels[:NUM_SAMPLES])
  _, history = experiment.fit(
      objective, experiment.DatasetStream.of(data, config), config, plan,
      desc=f"{config.model} on {data.name}")
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

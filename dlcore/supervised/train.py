"""Training and evaluating an image classifier: ``train_and_evaluate(config, workdir)``.

Writes into ``workdir`` what ``dlcore.loop`` writes (``metrics.jsonl`` with
one record per epoch by default, ``tensorboard/``, ``model.txt``,
``checkpoints/``) plus ``summary.json`` (final test metrics, training and
compile seconds, the config) and ``curves.png`` (loss and accuracy).
"""

import dataclasses
import pathlib
from typing import Any

from dlcore import experiment, optim
from dlcore.config import field
from dlcore.data import load_dataset, steps_per_epoch
from dlcore.models import (CLASSIFIERS, check_image_shape, check_model_name,
                           create_classifier)
from dlcore.supervised.steps import classifier_objective


@dataclasses.dataclass(frozen=True)
class ClassifyConfig(experiment.ExperimentConfig):
  """Options of ``experiments/classify.py`` (defaults: the digits run)."""
  model: str = field("cnn", "classifier", choices=sorted(CLASSIFIERS))
  epochs: int = field(30, "passes over the training set", valid="[1, inf)")
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=3e-3, schedule="cosine"),
      "the optimizer")
  label_smoothing: float = field(0.0, "label smoothing in the cross-entropy",
                                 valid="[0, 1)")
  batch_size: int = field(32, "global training batch size (split evenly "
                          "over the devices)", valid="[1, inf)")
  log_every: int = field(0, "steps between metrics records (0: once per "
                         "epoch)")
  eval_every: int = field(0, "steps between test evaluations (0: once per "
                          "epoch)")
  checkpoint_every: int = field(0, "steps between checkpoints (0: once per "
                                "epoch)")
  workdir: str = field("runs/classify", "where metrics, plots and "
                       "checkpoints go")


def _check(config: ClassifyConfig) -> None:
  check_model_name(config.model)
  experiment.check_options(config)


def train_and_evaluate(config: ClassifyConfig,
                       workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns the summary.

  ``workdir``, when given, replaces ``config.workdir``.
  """
  if workdir is not None:
    config = dataclasses.replace(config, workdir=str(workdir))
  _check(config)
  data = load_dataset(config.dataset, config.data_dir)
  check_image_shape(config.model, data.image_shape)
  per_epoch = steps_per_epoch(len(data.train), config.batch_size)
  num_steps = per_epoch * config.epochs
  model = create_classifier(config.model, data.num_classes,
                            dtype=experiment.compute_dtype(config))
  every = dataclasses.replace(config, **{
      name: getattr(config, name) or per_epoch
      for name in ("log_every", "eval_every", "checkpoint_every")})
  objective = classifier_objective(
      model, optim.create_optimizer(config.optimizer, num_steps),
      label_smoothing=config.label_smoothing, frozen=config.optimizer.freeze)
  _, history = experiment.fit(
      objective, data, config, num_steps=num_steps, every=every,
      steps_per_epoch=per_epoch, desc=f"{config.model} on {data.name}")
  last = history.last
  return experiment.finish(config, history, {
      "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
      "epochs": last["epoch"], "num_train": len(data.train),
      "num_test": len(data.test)}, x="epoch", panels={
          "loss": ["train_loss", "test_loss"],
          "accuracy": ["train_accuracy", "test_accuracy"]})

"""Training and evaluating an image classifier: ``train_and_evaluate(config, workdir)``.

Writes into ``workdir`` what ``dlcore.loop`` writes (``metrics.jsonl`` with
one record per epoch by default, ``tensorboard/``, ``model.txt``,
``checkpoints/``) plus ``summary.json`` (final test metrics, training and
compile seconds, the config) and ``curves.png`` (loss and accuracy).

``classes`` and ``train_per_class`` carve the task from the dataset
(``dlcore.data.subsets``). ``init_variables`` starts the model from other
weights (``dlcore.transfer``): it maps the fresh ``{"params",
"batch_stats"}`` to the ones to train from, and is called once on their
shapes (``jax.eval_shape``) to check them before anything is written.
"""

import dataclasses
import pathlib
from typing import Any, Callable

import jax
import numpy as np

from dlcore import experiment, optim
from dlcore.config import field
from dlcore.data import (Dataset, few_shot, load_dataset, parse_classes,
                         select_classes, steps_per_epoch)
from dlcore.models import (CLASSIFIERS, check_image_shape, check_model_name,
                           create_classifier)
from dlcore.objective import Objective
from dlcore.supervised.steps import classifier_objective

# ``{"params": ..., "batch_stats": ...} -> the same tree, other values``.
InitVariables = Callable[[dict[str, Any]], dict[str, Any]]


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
  shift: int = field(0, "augment training images by random translations of "
                     "up to this many pixels (0: none)", valid="[0, inf)")
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
  classes: str = field("", "keep only these classes, relabelled 0..k-1 in "
                       "this order, e.g. 5,6,7,8,9 (default: all)")
  train_per_class: int = field(0, "training images per class, drawn "
                               "reproducibly from the seed (0: all)",
                               valid="[0, inf)")


def _check(config: ClassifyConfig) -> None:
  check_model_name(config.model)
  experiment.check_options(config)


def load_task(config: ClassifyConfig) -> Dataset:
  """``config.dataset`` with only ``config.classes`` and ``train_per_class`` examples."""
  data = load_dataset(config.dataset, config.data_dir)
  data = select_classes(data, parse_classes(config.classes))
  return few_shot(data, config.train_per_class, config.seed)


def _warm_started(objective: Objective,
                  init_variables: InitVariables) -> Objective:
  """``objective`` whose ``init`` starts from ``init_variables``' weights.

  The optimizer state is made anew for them (an EMA starts at them).
  """
  def init(key, batch):
    state = objective.init(key, batch)
    variables = init_variables({"params": state.params,
                                "batch_stats": state.batch_stats})
    return state.replace(params=variables["params"],
                         batch_stats=variables["batch_stats"],
                         opt_state=state.tx.init(variables["params"]))
  return objective._replace(init=init)


def train_and_evaluate(config: ClassifyConfig,
                       workdir: str | pathlib.Path | None = None, *,
                       init_variables: InitVariables | None = None) -> dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns the summary.

  ``workdir``, when given, replaces ``config.workdir``; ``init_variables``:
  see the module docstring.
  """
  if workdir is not None:
    config = dataclasses.replace(config, workdir=str(workdir))
  _check(config)
  data = load_task(config)
  check_image_shape(config.model, data.image_shape)
  per_epoch = steps_per_epoch(len(data.train), config.batch_size)
  num_steps = per_epoch * config.epochs
  model = create_classifier(config.model, data.num_classes,
                            dtype=experiment.compute_dtype(config))
  key = jax.random.PRNGKey(0)
  shapes = jax.eval_shape(lambda: model.init(
      {"params": key, "dropout": key},
      np.zeros((1, *data.image_shape), np.float32), train=False))
  shapes = {"params": shapes["params"],
            "batch_stats": shapes.get("batch_stats", {})}
  optim.check_optimizer(config.optimizer, shapes["params"],
                        total_steps=num_steps)
  every = dataclasses.replace(config, **{
      name: getattr(config, name) or per_epoch
      for name in ("log_every", "eval_every", "checkpoint_every")})
  objective = classifier_objective(
      model, optim.create_optimizer(config.optimizer, num_steps),
      label_smoothing=config.label_smoothing, shift=config.shift,
      frozen=config.optimizer.freeze)
  if init_variables is not None:
    init_variables(shapes)  # Refuses mismatches before anything is written.
    objective = _warm_started(objective, init_variables)
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

"""Training and evaluating an image classifier: ``train_and_evaluate(config)`` and ``finetune(config)``.

Writes into ``config.workdir`` what ``dlcore.loop`` writes (``metrics.jsonl``
with one record per epoch by default, ``tensorboard/``, ``model.txt``,
``checkpoints/``) plus ``summary.json`` (final test metrics, training and
compile seconds, the config) and ``curves.png`` (loss and accuracy).

``classes`` and ``train_per_class`` carve the task from the dataset
(``dlcore.data.subsets``). ``init_variables`` starts the model from other
weights (``dlcore.transfer``): it maps the fresh ``{"params",
"batch_stats"}`` to the ones to train from, and is called once on their
shapes (``jax.eval_shape``) to check them before anything is written.
``finetune`` is that, from the weights in ``config.init_from``, with the
``reinit`` leaves (default: the head) fresh, the ``freeze`` leaves and their
BatchNorm statistics fixed (those layers run in inference mode), and
``lr_mult`` learning-rate multipliers, which join ``optimizer.freeze`` and
``optimizer.lr_mult`` (the run records them there). A resumed run continues
from its own checkpoint.
"""

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from dlcore import experiment, transfer
from dlcore.config import validate
from dlcore.data import (Dataset, few_shot, load_dataset, parse_classes,
                         select_classes, steps_per_epoch)
from dlcore.errors import ConfigError
from dlcore.models import create_classifier, smallest_square_side, takes_images
from dlcore.objective import Objective
from dlcore.supervised.config import ClassifyConfig, FinetuneConfig
from dlcore.supervised.objective import classifier_objective

# ``{"params": ..., "batch_stats": ...} -> the same tree, other values``.
InitVariables = Callable[[dict[str, Any]], dict[str, Any]]


def load_task(config: ClassifyConfig) -> Dataset:
  """``config.dataset`` with only ``config.classes`` and ``train_per_class`` examples."""
  data = load_dataset(config.dataset, config.data_dir)
  data = select_classes(data, parse_classes(config.classes))
  return few_shot(data, config.train_per_class, config.seed)


def check_model_fits(config: ClassifyConfig, image_shape) -> None:
  """``ConfigError`` unless ``config.model`` takes images of ``image_shape``, naming the smallest it takes."""
  model = create_classifier(config.model, num_classes=2)
  if takes_images(model, image_shape):
    return
  height, width, channels = image_shape
  side = smallest_square_side(model, channels, max(height, width))
  needs = f"at least {side}x{side} pixels" if side else "larger images"
  raise ConfigError(f"option model {config.model} cannot take images of "
                    f"{height}x{width} pixels; it needs {needs}; choose "
                    "larger images or another option model, such as mlp")


def _warm_started(objective: Objective,
                  init_variables: InitVariables) -> Objective:
  """``objective`` whose ``init`` starts from ``init_variables``' weights.

  The optimizer state is made anew for them (an EMA starts at them).
  """
  def init(key, batch):
    state = nn.meta.unbox(objective.init(key, batch))
    variables = init_variables({"params": state.params,
                                "batch_stats": state.batch_stats})
    return state.replace(params=variables["params"],
                         batch_stats=variables["batch_stats"],
                         opt_state=state.tx.init(variables["params"]))
  return objective._replace(init=init)


def train_and_evaluate(config: ClassifyConfig, *,
                       init_variables: InitVariables | None = None
                       ) -> dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns the summary (also ``summary.json``)."""
  validate(config)
  return _train(config, init_variables)


def _train(config: ClassifyConfig,
           init_variables: InitVariables | None) -> dict[str, Any]:
  """``train_and_evaluate`` of a validated ``config``."""
  data = load_task(config)
  check_model_fits(config, data.image_shape)
  per_epoch = steps_per_epoch(len(data.train), config.batch_size)
  num_steps = per_epoch * config.epochs
  model = create_classifier(config.model, data.num_classes,
                            dtype=experiment.compute_dtype(config))
  key = jax.random.PRNGKey(0)
  shapes = nn.meta.unbox(jax.eval_shape(lambda: model.init(
      {"params": key, "dropout": key},
      np.zeros((1, *data.image_shape), np.float32), train=False)))
  shapes = {"params": shapes["params"],
            "batch_stats": shapes.get("batch_stats", {})}
  if config.shift >= min(data.image_shape[:2]):
    raise ConfigError(
        f"option shift {config.shift} moves {data.image_shape[0]}x"
        f"{data.image_shape[1]} images entirely out of their frame; choose "
        f"a shift below {min(data.image_shape[:2])}")
  plan = experiment.plan(
      config, num_steps=num_steps, steps_per_epoch=per_epoch,
      batch_size=config.batch_size,
      optimizers={"optimizer": (config.optimizer, shapes["params"], num_steps)})
  if init_variables is not None:
    init_variables(shapes)  # Refuses mismatches before anything is written.
  objective = classifier_objective(
      model, plan.optimizers["optimizer"],
      label_smoothing=config.label_smoothing, shift=config.shift,
      frozen=config.optimizer.freeze)
  if init_variables is not None:
    objective = _warm_started(objective, init_variables)
  _, history = experiment.fit(
      objective, experiment.DatasetStream.of(data, config), config, plan,
      desc=f"{config.model} on {data.name}")
  last = history.last
  return experiment.finish(config, history, {
      "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
      "epochs": last["epoch"], "num_train": len(data.train),
      "num_test": len(data.test)}, x="epoch", panels={
          "loss": ["train_loss", "test_loss"],
          "accuracy": ["train_accuracy", "test_accuracy"]})


def finetune(config: FinetuneConfig) -> dict[str, Any]:
  """Fine-tunes from ``config.init_from``; returns the summary (as ``train_and_evaluate``)."""
  validate(config)
  if not config.init_from:
    raise ConfigError("option init_from is required: a dlcore workdir, an "
                      "Orbax checkpoint directory or an .npz parameter file")
  optimizer = dataclasses.replace(
      config.optimizer, freeze=config.optimizer.freeze + config.freeze,
      lr_mult=config.optimizer.lr_mult + config.lr_mult)
  config = dataclasses.replace(config, optimizer=optimizer, freeze=(),
                               lr_mult=())
  loaded = transfer.load_variables(config.init_from)
  head = create_classifier(config.model, num_classes=2).head_name
  return _train(config, transfer.warm_start(
      loaded, head=head, reinit=config.reinit, remap=config.remap,
      source=f"option init_from {config.init_from!r}"))

"""Training and evaluating an image classifier: ``train_and_evaluate(config, workdir)``.

Writes into ``workdir``: ``metrics.jsonl`` (one record per epoch),
``summary.json`` (final test metrics, total training seconds, the config),
``curves.png`` (loss and accuracy) and ``checkpoints/`` (one per epoch).

Training is data-parallel over ``config.devices`` devices (default: all,
on every process) by ``config.parallel`` (see ``dlcore.parallel``): each
global batch of ``batch_size`` examples is split evenly over the devices,
so the run computes what one device would on the same batches. In a
multi-host run only process 0 writes files (Orbax coordinates the
checkpoint writes of all processes).
"""

import dataclasses
import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jax.sharding import Mesh

from dlcore import io, parallel, plots
from dlcore.config import check_positive, field, to_dict
from dlcore.data import (eval_batches, load_dataset, prefetch, steps_per_epoch,
                         train_batches)
from dlcore.errors import ConfigError
from dlcore.loop import train_loop
from dlcore.models import CLASSIFIERS, check_model_name, create_classifier
from dlcore.state import TrainState, count_params, create_train_state
from dlcore.supervised.steps import eval_step, mean_of_sums, train_step

OPTIMIZERS = ("adam", "sgd")


@dataclasses.dataclass(frozen=True)
class ClassifyConfig(parallel.ParallelConfig):
  """Options of ``experiments/classify.py`` (defaults: the digits run)."""
  dataset: str = field("digits", "digits (embedded), a TFDS name such as "
                       "mnist or cifar10, or a path to an .npz file")
  data_dir: str | None = field(None, "TFDS data directory (default "
                               "~/tensorflow_datasets)")
  model: str = field("cnn", "classifier", choices=sorted(CLASSIFIERS))
  epochs: int = field(30, "passes over the training set")
  batch_size: int = field(32, "global training batch size (split evenly "
                          "over the devices)")
  eval_batch_size: int = field(256, "evaluation batch size (the last batch "
                               "is padded and masked, never dropped)")
  optimizer: str = field("adam", "adam, or sgd with Nesterov momentum 0.9",
                         choices=OPTIMIZERS)
  lr: float = field(3e-3, "peak learning rate (cosine decay to 0)")
  weight_decay: float = field(0.0, "decoupled weight decay (AdamW) or L2 (SGD)")
  label_smoothing: float = field(0.0, "label smoothing in the cross-entropy")
  seed: int = field(0, "seed of initialisation, shuffling and dropout")
  workdir: str = field("runs/classify", "where metrics, plots and "
                       "checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")


def create_optimizer(config: ClassifyConfig, total_steps: int):
  """Optax optimizer with a cosine-decayed learning rate."""
  schedule = optax.cosine_decay_schedule(config.lr, max(total_steps, 1))
  if config.optimizer == "adam":
    return optax.adamw(schedule, weight_decay=config.weight_decay)
  return optax.chain(optax.add_decayed_weights(config.weight_decay),
                     optax.sgd(schedule, momentum=0.9, nesterov=True))


def evaluate(eval_fn, state: TrainState, split, batch_size: int,
             mesh: Mesh | None = None) -> dict[str, float]:
  """Exact mean test metrics over every example of ``split``.

  With a ``mesh``, ``eval_fn`` is ``parallel.wrap(eval_step, mesh, ...)``
  and each batch is padded (masked) to a multiple of the device count and
  sharded over the devices.
  """
  batches, sharding = eval_batches(split, batch_size), None
  if mesh is not None:
    batches = (parallel.shard_batch(parallel.pad_batch(b, mesh.size), mesh)
               for b in batches)
    sharding = parallel.batch_sharding(mesh)
  sums = None
  for batch in prefetch(batches, sharding=sharding):
    out = eval_fn(state, batch)
    sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
  return mean_of_sums(parallel.to_host(sums))


def _check(config: ClassifyConfig) -> None:
  if config.optimizer not in OPTIMIZERS:
    raise ConfigError(f"unknown optimizer {config.optimizer!r}; choose one of "
                      f"{', '.join(OPTIMIZERS)}")
  check_positive(config, "epochs", "batch_size", "eval_batch_size")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ConfigError("--label-smoothing must be in [0, 1), got "
                      f"{config.label_smoothing}")


def train_and_evaluate(config: ClassifyConfig,
                       workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns the summary."""
  _check(config)
  check_model_name(config.model)
  mesh = parallel.data_mesh(config.devices)
  parallel.check_divisible(config.batch_size, mesh)
  workdir = io.prepare_workdir(workdir)
  data = load_dataset(config.dataset, config.data_dir)
  per_epoch = steps_per_epoch(len(data.train), config.batch_size)
  num_steps = per_epoch * config.epochs
  model = create_classifier(config.model, data.num_classes)

  init_key, loop_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = parallel.replicate(
      create_train_state(model, create_optimizer(config, num_steps),
                         jnp.asarray(data.train.images[:1]), init_key), mesh)
  step_fn = parallel.wrap(train_step, mesh, config.parallel, donate_argnums=0,
                          label_smoothing=config.label_smoothing)
  eval_fn = parallel.wrap(eval_step, mesh, config.parallel)
  shard = functools.partial(parallel.shard_batch, mesh=mesh)

  def report(step: int, state: TrainState) -> dict[str, Any]:
    test = evaluate(eval_fn, state, data.test, config.eval_batch_size, mesh)
    return {"epoch": step // per_epoch,
            **{f"test_{k}": v for k, v in test.items()}}

  state, records = train_loop(
      state, step_fn,
      lambda start: prefetch(map(shard, train_batches(
          data.train, config.batch_size, config.seed, start)),
          sharding=parallel.batch_sharding(mesh)),
      key=loop_key, num_steps=num_steps, report_every=per_epoch,
      workdir=workdir, resume=config.resume, report=report,
      desc=f"{config.model} on {data.name}, {mesh.size} device(s)")
  final = records[-1]
  summary = {
      "test_accuracy": final["test_accuracy"], "test_loss": final["test_loss"],
      "train_seconds": sum(r["seconds"] for r in records), "epochs": final["epoch"],
      "num_params": count_params(state.params),
      "num_train": len(data.train), "num_test": len(data.test),
      "num_devices": mesh.size, "num_processes": jax.process_count(),
      "config": to_dict(config)}
  if parallel.is_main_process():
    plots.plot_curves(records, workdir / "curves.png", x="epoch", panels={
        "loss": ["train_loss", "test_loss"],
        "accuracy": ["train_accuracy", "test_accuracy"]})
    io.write_json(workdir / "summary.json", summary)
  return summary

"""An objective trained on a dataset in a workdir: what every data-driven experiment shares.

Usage (the whole driver of an objective)::

  data = load_dataset(config.dataset, config.data_dir)
  objective = classifier_objective(model, tx)
  state, history = experiment.fit(objective, data, config, num_steps=1000,
                                  desc="cnn on digits")
  experiment.finish(config, history, {"test_accuracy": ...},
                    panels={"loss": ["train_loss", "test_loss"]})

``fit`` builds the device mesh, the keys, the state and the sharded batch
stream, wraps the objective's steps for many devices, and hands them to
``dlcore.loop.train`` (the only place with side effects), evaluating the
objective's ``eval_step`` on the test split and saving its ``sample``
grids at their cadences. ``finish`` writes ``summary.json`` and
``curves.png``. Evaluation and samples use the EMA of the parameters when
the optimizer keeps one.
"""

import dataclasses
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dlcore import files, metrics, optim, parallel, plots
from dlcore.config import SEED_RANGE, check_ranges, experiment_dict, field
from dlcore.data import (Dataset, Split, eval_batches, prefetch,
                         steps_per_epoch, train_batches)
from dlcore.loop import History, LoopConfig, check_cadences, train
from dlcore.objective import Objective
from dlcore.writers import SUMMARY_FILE

DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(parallel.ParallelConfig, LoopConfig):
  """Options every data-driven experiment shares (each script sets its defaults)."""
  dataset: str = field("digits", "digits (embedded), a TFDS name such as "
                       "mnist or cifar10, or a path to an .npz file")
  data_dir: str | None = field(None, "TFDS data directory (default "
                               "~/tensorflow_datasets)")
  batch_size: int = field(64, "global training batch size (split evenly "
                          "over the devices)", valid="[1, inf)")
  eval_batch_size: int = field(256, "evaluation batch size (the last batch "
                               "is padded and masked, never dropped)",
                               valid="[1, inf)")
  dtype: str = field("float32", "computation dtype; parameters and "
                     "optimizer state stay float32", choices=DTYPES)
  seed: int = field(0, "seed of initialisation, shuffling and noise",
                    valid=SEED_RANGE)
  workdir: str = field("runs/experiment", "where metrics, plots and "
                       "checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")


def evaluate(eval_fn: Callable[..., metrics.Collection], state: Any,
             split: Split, batch_size: int, mesh=None,
             key: jax.Array | None = None) -> dict[str, float]:
  """Exact metrics over every example of ``split``: merged sums, computed once.

  ``eval_fn(state, batch[, key])`` returns mergeable metrics; with a
  ``key``, batch ``i`` gets ``fold_in(key, i)``. With a ``mesh``, ``eval_fn``
  is ``parallel.wrap(eval_step, mesh, ...)`` and each batch is padded
  (masked) to a multiple of the device count and sharded over the devices.
  """
  batches, sharding = eval_batches(split, batch_size), None
  if mesh is not None:
    batches = (parallel.shard_batch(parallel.pad_batch(b, mesh.size), mesh)
               for b in batches)
    sharding = parallel.batch_sharding(mesh)
  total = None
  for i, batch in enumerate(prefetch(batches, sharding=sharding)):
    args = () if key is None else (jax.random.fold_in(key, i),)
    total = metrics.merge(total, eval_fn(state, batch, *args))
  return metrics.compute(parallel.to_host(total))


def check_options(config: ExperimentConfig) -> None:
  """Raises ``ConfigError`` for an option outside its range or a bad cadence.

  Drivers call it first, before any data is loaded.
  """
  check_ranges(config)
  check_cadences(config)


def check(config: ExperimentConfig, data: Dataset):
  """The device mesh, once ``config`` is known to fit ``data`` (else ``ConfigError``).

  Call it before anything is written; ``fit`` calls it too.
  """
  check_options(config)
  steps_per_epoch(len(data.train), config.batch_size)
  mesh = parallel.data_mesh(config.devices)
  parallel.check_divisible(config.batch_size, mesh)
  return mesh


def fit(objective: Objective, data: Dataset, config: ExperimentConfig, *,
        num_steps: int, desc: str, every: LoopConfig | None = None,
        prepare: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
        evaluate_fn: Callable[[Any], dict[str, Any]] | None = None,
        evaluate_first: bool = False,
        steps_per_epoch: int | None = None) -> tuple[Any, History]:
  """Trains ``objective`` on ``data.train`` as ``config`` says; returns the state and history.

  Args:
    objective: its ``eval_step`` (if any) runs on ``data.test`` at the eval
      cadence, reported as ``test_<name>``; its ``sample`` (if any) is saved
      as an image grid at the sample cadence.
    data: the dataset.
    config: an ``ExperimentConfig``.
    num_steps: training steps.
    desc: the progress bar's label.
    every: cadences (default: those of ``config``).
    prepare: maps each numpy batch before it is sharded (e.g. rescaling).
    evaluate_fn: ``evaluate(state) -> {name: value}`` added to evaluations.
    evaluate_first: a fresh run also evaluates its initial state (step 0).
    steps_per_epoch: records carry ``epoch``.
  """
  mesh = check(config, data)
  workdir = files.prepare_workdir(config.workdir)
  prepare = prepare or (lambda batch: batch)
  init_key, loop_key, eval_key, sample_key = jax.random.split(
      jax.random.PRNGKey(config.seed), 4)
  first = prepare(next(train_batches(data.train, config.batch_size,
                                     config.seed)))
  state = parallel.replicate(objective.init(init_key, first), mesh)
  step_fn = parallel.wrap(objective.train_step, mesh, config.parallel,
                          donate_argnums=0)

  def batches(start: int):
    stream = map(prepare, train_batches(data.train, config.batch_size,
                                        config.seed, start))
    return prefetch((parallel.shard_batch(b, mesh) for b in stream),
                    sharding=parallel.batch_sharding(mesh))

  evaluations = []
  if objective.eval_step is not None:
    eval_fn = parallel.wrap(objective.eval_step, mesh, config.parallel)
    evaluations.append(lambda state: {
        f"test_{k}": v for k, v in evaluate(
            eval_fn, state, data.test, config.eval_batch_size, mesh,
            eval_key).items()})
  if evaluate_fn is not None:
    evaluations.append(evaluate_fn)

  def evaluate_all(state):
    state = optim.with_ema_params(state)
    return {k: v for fn in evaluations for k, v in fn(state).items()}

  sample = None
  if objective.sample is not None:
    sample_fn = jax.jit(objective.sample)
    sample = lambda state: parallel.to_host(
        sample_fn(optim.with_ema_params(state), sample_key))

  return train(
      state, step_fn, batches, key=loop_key, num_steps=num_steps,
      workdir=workdir, every=every or config,
      evaluate=evaluate_all if evaluations else None, sample=sample,
      resume=config.resume, config=experiment_dict(config),
      steps_per_epoch=steps_per_epoch, evaluate_first=evaluate_first,
      desc=f"{desc}, {mesh.size} device(s)")


def finish(config: Any, history: History, summary: dict[str, Any], *,
           panels: dict[str, list[str]], x: str = "step") -> dict[str, Any]:
  """Adds the run's facts to ``summary``, writes it and ``curves.png``; returns it."""
  summary = {**summary, "steps": history.records[-1]["step"],
             "train_seconds": history.train_seconds,
             "compile_seconds": history.compile_seconds,
             "num_params": history.num_params,
             "num_devices": jax.device_count() if config.devices is None
             else config.devices,
             "num_processes": jax.process_count(),
             "config": experiment_dict(config)}
  if parallel.is_main_process():
    workdir = pathlib.Path(config.workdir)
    plots.plot_curves(history.records, workdir / "curves.png", x=x,
                      panels=panels)
    files.write_json(workdir / SUMMARY_FILE, summary)
  return summary


def compute_dtype(config: ExperimentConfig):
  """The ``jnp`` dtype named by ``config.dtype``."""
  return jnp.dtype(config.dtype)

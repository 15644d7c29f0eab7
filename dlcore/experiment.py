"""An objective trained in a workdir: the configs, plan and driver every experiment shares.

Usage (the whole driver of an objective)::

  def train_and_evaluate(config: ClassifyConfig) -> dict:
    validate(config)                                  # each option, once
    data = load_dataset(config.dataset, config.data_dir)
    plan = experiment.plan(config, num_steps=..., steps_per_epoch=...,
                           optimizers={"optimizer": (config.optimizer, shapes)})
    objective = classifier_objective(model, plan.optimizers["optimizer"])
    stream = data_stream(data, config)
    state, history = experiment.fit(objective, stream, config, plan,
                                    desc="cnn on digits")
    return experiment.finish(config, history, {"test_accuracy": ...},
                             panels={"loss": ["train_loss", "test_loss"]})

``plan`` makes every cross-field and data-dependent check before anything
is written and returns what it derived (the device mesh, the step count,
the cadences, the optimizers); ``fit`` trusts it. ``fit`` builds the keys,
the state and the sharded batch stream, wraps the objective's steps for
many devices and hands them to ``dlcore.loop.train`` (the only place with
side effects), evaluating the objective's ``eval_step`` on the stream's
test batches and saving its ``sample`` grids at their cadences.
``finish`` writes ``summary.json`` and ``curves.png``. Evaluation and
samples use the EMA of the parameters when the optimizer keeps one.

A stream is any object with ``batches(start) -> iterator`` (the global
training batch of step ``start``, ``start + 1``, ...: numpy pytrees, or
None for an objective that makes its own data) and ``test_batches() ->
iterable`` (padded, masked evaluation batches; empty when there are none).
``DatasetStream`` streams one image dataset.
"""

import contextlib
import dataclasses
import pathlib
from typing import Any, Callable, Iterable, Iterator, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from dlcore import files, metrics, optim, parallel, plots, sharding
from dlcore.config import SEED_RANGE, experiment_dict, field
from dlcore.data import (Dataset, Split, eval_batches, prefetch,
                         train_batches)
from dlcore.data import steps_per_epoch as steps_per_epoch_of
from dlcore.errors import ConfigError
from dlcore.loop import Cadences, History, train
from dlcore.objective import Objective
from dlcore.writers import SUMMARY_FILE

DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class RunConfig(parallel.ParallelConfig):
  """Options of every run: its seed, its workdir, how often it records and saves.

  A cadence is a number of steps; 0 means "at the last step only" (the
  last step always records, evaluates, samples and saves).
  """
  seed: int = field(0, "seed of initialisation, shuffling and noise",
                    valid=SEED_RANGE)
  log_every: int = field(100, "steps between metrics records (each the mean "
                         "over the steps since the last; 0: at the end "
                         "only)", valid="[0, inf)")
  eval_every: int = field(500, "steps between evaluations (0: at the end "
                          "only)", valid="[0, inf)")
  checkpoint_every: int = field(500, "steps between checkpoints (0: at the "
                                "end only; the last step is always saved)",
                                valid="[0, inf)")
  workdir: str = field("runs/experiment", "where metrics, plots and "
                       "checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(RunConfig):
  """Options of a run on one dataset (each script sets its defaults)."""
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


@dataclasses.dataclass(frozen=True)
class EpochConfig(ExperimentConfig):
  """Options of a run counted in epochs: by default it records, evaluates and saves once per epoch."""
  epochs: int = field(30, "passes over the training set", valid="[1, inf)")
  log_every: int | None = field(None, "steps between metrics records (0: at "
                                "the end only; default: once per epoch)",
                                valid="[0, inf)")
  eval_every: int | None = field(None, "steps between test evaluations (0: "
                                 "at the end only; default: once per epoch)",
                                 valid="[0, inf)")
  checkpoint_every: int | None = field(None, "steps between checkpoints (0: "
                                       "at the end only; default: once per "
                                       "epoch)", valid="[0, inf)")


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a run's options and data imply, derived once before anything is written.

  Attributes:
    mesh: the devices the run computes on.
    num_steps: the run's steps (a compiled RL chunk counts its environment
      steps).
    every: the cadences, each 0 (at the end only) or a multiple of
      ``steps_per_call``.
    optimizers: each network's transformation, by its config section.
    steps_per_epoch: records carry ``epoch`` when set.
    steps_per_call: steps one call of the train step makes.
    population: the state's leading axis holds this many independent
      members (RL seeds) spread over the mesh; 0 for one state replicated.
  """
  mesh: jax.sharding.Mesh
  num_steps: int
  every: Cadences
  optimizers: dict[str, optax.GradientTransformation]
  steps_per_epoch: int | None = None
  steps_per_call: int = 1
  population: int = 0


def cadence(config: Any, name: str, *, steps_per_call: int = 1,
            per_epoch: int | None = None) -> int:
  """Option ``name`` of ``config`` in steps: None becomes ``per_epoch``; 0 and multiples of ``steps_per_call`` pass.

  ``ConfigError`` names the option when it is not a whole number of calls.
  """
  value = getattr(config, name, 0)
  if value is None:
    value = per_epoch
  if value % steps_per_call:
    raise ConfigError(f"option {name} must be 0 (at the end only) or a "
                      f"multiple of the {steps_per_call} steps of one "
                      f"compiled call, got {value}")
  return value


def plan(config: RunConfig, *, num_steps: int,
         optimizers: dict[str, tuple[optim.OptimizerConfig, Any, int]] = {},  # pylint: disable=dangerous-default-value
         steps_per_epoch: int | None = None, steps_per_call: int = 1,
         batch_size: int | None = None, num_train: int | None = None,
         population: int = 0, mesh: jax.sharding.Mesh | None = None,
         cadences: dict[str, int] | None = None) -> Plan:
  """Checks what the options imply together and derives the run's ``Plan``.

  Args:
    config: a validated config (``dlcore.config.validate``).
    num_steps: the run's steps.
    optimizers: ``{section: (optimizer config, parameter shapes or None,
      updates its schedules count)}``; each is checked against its network
      and built.
    steps_per_epoch: cadences given as None mean once per epoch.
    steps_per_call: steps one compiled call makes (cadences are multiples).
    batch_size: a global batch that must split evenly over the devices
      (and, with ``num_train``, fit in the training set).
    num_train: the training set's examples.
    population: independent members of the state (they must split evenly
      over the devices).
    mesh: the devices (default: ``config.devices`` of every process).
    cadences: ``{"log", "eval", "sample", "checkpoint"}`` already in steps
      (default: from the options ``log_every`` ... ``checkpoint_every``).
  """
  mesh = mesh or parallel.run_mesh(config)
  if batch_size is not None:
    if num_train is not None:
      steps_per_epoch_of(num_train, batch_size)
    parallel.check_divisible(batch_size, mesh)
  every = Cadences(**(cadences or {
      kind: cadence(config, f"{kind}_every", steps_per_call=steps_per_call,
                    per_epoch=steps_per_epoch)
      for kind in ("log", "eval", "sample", "checkpoint")}))
  built = {}
  for name, (opt_config, params, num_updates) in optimizers.items():
    optim.check_optimizer(opt_config, params, total_steps=num_updates,
                          prefix=name)
    built[name] = optim.create_optimizer(opt_config, num_updates)
  return Plan(mesh, num_steps, every, built, steps_per_epoch, steps_per_call,
              population)


class Stream(Protocol):
  """A run's data; see the module docstring."""

  def batches(self, start: int) -> Iterator[Any]: ...

  def test_batches(self) -> Iterable[dict[str, np.ndarray]]: ...


@dataclasses.dataclass(frozen=True)
class DatasetStream:
  """Shuffled training batches and exact test batches of one dataset.

  Batch ``s`` is ``train_batches(train, batch_size, seed)``'s ``s``-th, so
  it depends only on ``(seed, s)``; ``prepare`` maps each batch (e.g. to
  a generator's [-1, 1]).
  """
  train: Split
  test: Split | None
  batch_size: int
  eval_batch_size: int
  seed: int
  prepare: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None

  @classmethod
  def of(cls, data: Dataset, config: ExperimentConfig, **kwargs) -> "DatasetStream":
    return cls(data.train, data.test, config.batch_size,
               config.eval_batch_size, config.seed, **kwargs)

  def batches(self, start: int) -> Iterator[dict[str, np.ndarray]]:
    stream = train_batches(self.train, self.batch_size, self.seed, start)
    return stream if self.prepare is None else map(self.prepare, stream)

  def test_batches(self) -> Iterable[dict[str, np.ndarray]]:
    if self.test is None:
      return ()
    stream = eval_batches(self.test, self.eval_batch_size)
    return stream if self.prepare is None else map(self.prepare, stream)


@dataclasses.dataclass(frozen=True)
class NoData:
  """The stream of an objective that makes its own data (an RL agent): None at every step."""

  def batches(self, start: int) -> Iterator[None]:
    del start
    while True:
      yield None

  def test_batches(self) -> Iterable[dict[str, np.ndarray]]:
    return ()


def evaluate(eval_fn: Callable[..., metrics.Collection], state: Any,
             batches: Iterable[dict[str, np.ndarray]], mesh=None,
             key: jax.Array | None = None) -> dict[str, float]:
  """Exact metrics over every example of ``batches``: merged sums, computed once.

  ``eval_fn(state, batch[, key])`` returns mergeable metrics; with a
  ``key``, batch ``i`` gets ``fold_in(key, i)``. With a ``mesh``, ``eval_fn``
  is ``parallel.wrap(eval_step, mesh, ...)`` and each batch is padded
  (masked) to a multiple of the device count and sharded over the devices.
  """
  sharding = None
  if mesh is not None:
    batches = (parallel.shard_batch(parallel.pad_batch(b, mesh.size), mesh)
               for b in batches)
    sharding = parallel.batch_sharding(mesh)
  total = None
  for i, batch in enumerate(prefetch(batches, sharding=sharding)):
    args = () if key is None else (jax.random.fold_in(key, i),)
    total = metrics.merge(total, eval_fn(state, batch, *args))
  return metrics.compute(parallel.to_host(total))


def population_objective(objective: Objective, size: int) -> Objective:
  """``objective`` for ``size`` independent members stacked on a leading axis.

  ``init(keys, batch)`` starts member ``i`` from ``keys[i]`` (``keys`` is
  ``[size, 2]``); every member takes the same batch and step key (an RL
  member carries its own keys). No function communicates across members,
  so the leading axis may be split over devices.
  """
  def init(keys, batch, *, axis_name=None):
    del axis_name
    return jax.vmap(lambda k: objective.init(k, batch))(keys)

  def train_step(states, batch, key, *, axis_name=None):
    del axis_name
    return jax.vmap(lambda s: objective.train_step(s, batch, key))(states)

  return Objective(init=init, train_step=train_step)


def fit(objective: Objective, stream: Stream, config: RunConfig, plan: Plan,  # pylint: disable=redefined-outer-name
        *, desc: str,
        evaluate_fn: Callable[[Any], dict[str, Any]] | None = None,
        evaluate_first: bool = False,
        summarize: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None,
        ) -> tuple[Any, History]:
  """Trains ``objective`` on ``stream`` as ``plan`` says; returns the state and history.

  Args:
    objective: its ``eval_step`` (if any) runs on ``stream.test_batches()``
      at the eval cadence, reported as ``test_<name>``; its ``sample`` (if
      any) is saved as an image grid at the sample cadence. With
      ``plan.population`` it is one member's (``population_objective``).
    stream: the data (see the module docstring).
    config: the run's options (``seed``, ``workdir``, ``resume``,
      ``parallel``; all of them are recorded with each checkpoint).
    plan: from ``plan``.
    desc: the progress bar's label.
    evaluate_fn: ``evaluate(state) -> {name: value}`` added to evaluations.
    evaluate_first: a fresh run also evaluates its initial state (step 0).
    summarize: the loop's record of the calls since the last one (default:
      the mean of each metric, as ``train_<name>``).
  """
  mesh = plan.mesh
  init_key, loop_key, eval_key, sample_key = jax.random.split(
      jax.random.PRNGKey(config.seed), 4)
  first = next(stream.batches(0))
  if plan.population:
    objective = population_objective(objective, plan.population)
    init_args = (parallel.shard_batch(np.asarray(jax.random.split(
        init_key, plan.population)), mesh, parallel.MEMBERS), first)
    batch_specs = parallel.MEMBERS
  else:
    init_args, batch_specs = (init_key, first), parallel.BATCH
  state, state_specs = _create_state(objective.init, init_args, config, mesh,
                                     bool(plan.population))
  workdir = files.prepare_workdir(config.workdir)  # Once the rules held.
  step_fn = parallel.wrap(
      objective.train_step, mesh, config.parallel,
      in_specs=(state_specs, batch_specs, parallel.REPLICATED),
      out_specs=(state_specs, parallel.MEMBERS if plan.population
                 else parallel.REPLICATED),
      donate_argnums=0, collectives=not plan.population)

  def batches(start: int):
    return prefetch((None if b is None else parallel.shard_batch(b, mesh)
                     for b in stream.batches(start)),
                    sharding=parallel.batch_sharding(mesh))

  loop_key = parallel.replicate(loop_key, mesh)

  evaluations = []
  if objective.eval_step is not None:
    eval_fn = parallel.wrap(
        objective.eval_step, mesh, config.parallel,
        in_specs=(state_specs, parallel.BATCH, parallel.REPLICATED),
        out_specs=parallel.REPLICATED)
    evaluations.append(lambda state: {
        f"test_{k}": v for k, v in evaluate(
            eval_fn, state, stream.test_batches(), mesh, eval_key).items()})
  if evaluate_fn is not None:
    evaluations.append(evaluate_fn)

  def evaluate_all(state):
    state = optim.with_ema_params(state)
    return {k: v for fn in evaluations for k, v in fn(state).items()}

  sample = None
  if objective.sample is not None:
    sample_fn = jax.jit(objective.sample,
                        out_shardings=parallel.replicated(mesh))
    sample = lambda state: parallel.to_host(
        sample_fn(optim.with_ema_params(state), sample_key))

  where = sharding.placement(state, mesh)
  # Under jit, steps may constrain their arrays' placement on the mesh
  # (pmap brings its own).
  with (jax.set_mesh(mesh) if config.parallel == "jit"
        else contextlib.nullcontext()):
    state, history = train(
        state, step_fn, batches, key=loop_key, num_steps=plan.num_steps,
        workdir=workdir, every=plan.every,
        evaluate=evaluate_all if evaluations else None, sample=sample,
        resume=config.resume, config=experiment_dict(config),
        steps_per_call=plan.steps_per_call, summarize=summarize,
        steps_per_epoch=plan.steps_per_epoch, evaluate_first=evaluate_first,
        desc=f"{desc}, {mesh.size} device(s)")
  history.placement = where
  return state, history


def _create_state(init: Callable[..., Any], args: tuple, config: RunConfig,
                  mesh: jax.sharding.Mesh, population: bool) -> tuple[Any, Any]:
  """``(state, specs)``: ``init(*args)`` written straight into its shards, and each leaf's spec.

  ``jit`` splits the state as the sharding rules say (``dlcore.sharding``);
  ``shard_map`` and ``pmap`` keep a copy on every device; a population's
  members are split over ``data``. No leaf is ever whole on one device
  unless its spec replicates it. Flax's logical-axis boxes are taken off.
  The leaves travel as a flat list: the static parts of a state (a
  module's ``apply``) made by two calls of ``init`` need not compare equal.
  """
  abstract = jax.eval_shape(init, *args)
  if population:
    specs = jax.tree.map(lambda _: parallel.MEMBERS, nn.meta.unbox(abstract))
  elif config.parallel == "jit":
    specs = sharding.state_specs(abstract, mesh, config.sharding)
  else:
    specs = jax.tree.map(lambda _: parallel.REPLICATED,
                         nn.meta.unbox(abstract))
  treedef = jax.tree.structure(nn.meta.unbox(abstract))
  spec_leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
  leaves = jax.jit(
      lambda *a: jax.tree.leaves(nn.meta.unbox(init(*a))),
      out_shardings=[jax.sharding.NamedSharding(mesh, s)
                     for s in spec_leaves])(*args)
  return treedef.unflatten(leaves), treedef.unflatten(spec_leaves)


def finish(config: RunConfig, history: History, summary: dict[str, Any], *,
           panels: dict[str, list[str]] | None = None,
           x: str = "step") -> dict[str, Any]:
  """Adds the run's facts to ``summary``, writes it and ``curves.png``; returns it."""
  summary = {**summary, **history.placement,
             "steps": history.records[-1]["step"],
             "train_seconds": history.train_seconds,
             "compile_seconds": history.compile_seconds,
             "num_params": history.num_params,
             "num_devices": jax.device_count() if config.devices is None
             else config.devices,
             "num_processes": jax.process_count(),
             "config": experiment_dict(config)}
  if parallel.is_main_process():
    workdir = pathlib.Path(config.workdir)
    if panels:
      plots.plot_curves(history.records, workdir / "curves.png", x=x,
                        panels=panels)
    files.write_json(workdir / SUMMARY_FILE, summary)
  return summary


def compute_dtype(config: ExperimentConfig):
  """The ``jnp`` dtype named by ``config.dtype``."""
  return jnp.dtype(config.dtype)

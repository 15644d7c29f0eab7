"""A compiled RL program trained for many seeds on the common driver, evaluated, plotted and summarised.

Usage (the whole of ``dlcore.rl.dqn.train`` and ``dlcore.rl.ppo.train``)::

  summary = train_program(program, config, iterations_per_chunk=100,
                          chunks=50, name="DQN", summarize=summarize,
                          evaluations={"eval_return": 0},
                          losses=("loss",), measures="acting, ... learning")

The program (``dlcore.rl.program``) becomes an ``Objective`` whose train
step is one compiled chunk, and ``config.seeds`` independent seeds of it
one population (``dlcore.experiment.fit``): one call of the loop's step is
one chunk for every seed at once (``jax.vmap``), the seeds spread over
``seed_mesh(config)``'s devices. The runner carries the keys, buffers and
environment states, so a checkpoint between chunks resumes exactly.
Writes into ``config.workdir`` (process 0) what the loop writes, and:

- ``summary.json``: per-seed and mean final evaluation returns,
  ``env_steps_per_sec`` (all seeds; ``..._per_seed`` too),
  ``train_seconds`` (compiled chunks only), ``compile_seconds`` (ahead of
  time), ``num_devices``, the config;
- ``returns.png``: training return against environment steps, mean over
  seeds with the min-max spread, and the loss terms.
"""

import pathlib
import warnings
from typing import Any, Callable

import jax
import matplotlib.pyplot as plt
import numpy as np

from dlcore import experiment, files, parallel, plots
from dlcore.config import experiment_dict
from dlcore.errors import ConfigError
from dlcore.rl.config import RlConfig
from dlcore.rl.program import Program, as_objective
from dlcore.rl.seeds import seed_mesh
from dlcore.writers import SUMMARY_FILE

EVAL_STREAM = 1  # fold_in(PRNGKey(seed), EVAL_STREAM) seeds the evaluations.


def per_seed_record(name: str, values: np.ndarray) -> dict[str, Any]:
  """``{name: mean, name_per_seed: [...]}`` of one value per seed."""
  return {name: float(np.mean(values)),
          f"{name}_per_seed": [float(v) for v in values]}


def _rounded_up(steps: int, chunk: int) -> int:
  return -(-steps // chunk) * chunk


def plan(config: RlConfig, *, steps_per_iteration: int,
         iterations_per_chunk: int, chunks: int, num_updates: int,
         optimizer_shapes: Any = None) -> experiment.Plan:
  """The run's plan: cadences in whole chunks, the seeds' mesh, the optimizer.

  ``optimizer_shapes``: the parameters ``config.optimizer``'s patterns
  must match.
  """
  chunk = iterations_per_chunk * steps_per_iteration
  if config.chunk_steps > config.total_steps:
    raise ConfigError(f"option chunk_steps {config.chunk_steps} is longer "
                      f"than the run's option total_steps "
                      f"{config.total_steps}; choose a chunk of at most "
                      f"{config.total_steps} steps")
  if config.log_every and config.log_every % chunk:
    raise ConfigError(f"option log_every must be 0 (at the end only) or a "
                      f"multiple of the {chunk} environment steps of one "
                      f"chunk (option chunk_steps), got {config.log_every}")
  return experiment.plan(
      config, num_steps=chunks * chunk, steps_per_call=chunk,
      population=config.seeds, mesh=seed_mesh(config),
      optimizers={"optimizer": (config.optimizer, optimizer_shapes,
                                num_updates)},
      cadences={"log": chunk if config.log_every is None else config.log_every,
                "eval": _rounded_up(config.eval_every, chunk),
                "sample": 0,
                "checkpoint": _rounded_up(config.checkpoint_every, chunk)})


def plot_returns(records: list[dict[str, Any]], path: pathlib.Path,
                 title: str, losses: tuple[str, ...]) -> None:
  """Training return (mean over seeds, min-max band) and the ``losses`` against env steps."""
  steps = np.array([r["step"] for r in records if "episode_return_per_seed" in r])
  returns = np.array([[np.nan if v is None else v
                       for v in r["episode_return_per_seed"]]
                      for r in records if "episode_return_per_seed" in r])
  fig, (ax_return, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
  with warnings.catch_warnings():  # Chunks in which no episode ended: NaN.
    warnings.simplefilter("ignore", RuntimeWarning)
    ax_return.fill_between(steps, np.nanmin(returns, 1), np.nanmax(returns, 1),
                           alpha=0.25, label="min-max over seeds")
    ax_return.plot(steps, np.nanmean(returns, 1), label="mean over seeds")
  ax_return.set_title(f"{title}: training episode return")
  for name in losses:
    points = [(r["step"], r[name]) for r in records
              if r.get(name) is not None]
    if points:
      ax_loss.plot(*zip(*points), label=name)
  ax_loss.set_yscale("symlog", linthresh=1e-2)
  ax_loss.set_title("losses (mean over seeds)")
  for ax in (ax_return, ax_loss):
    ax.set_xlabel("environment steps (per seed)")
    ax.grid(alpha=0.3)
    ax.legend()
  plots.save_figure(fig, path)


def train_program(program: Program, config: RlConfig, plan: experiment.Plan,  # pylint: disable=redefined-outer-name
                  *, iterations_per_chunk: int, name: str,
                  summarize: Callable[[dict[str, np.ndarray]], dict[str, Any]],
                  evaluations: dict[str, int], losses: tuple[str, ...],
                  measures: str, **extra: Any) -> dict[str, Any]:
  """Trains ``config.seeds`` seeds of ``program``; returns the summary (also ``summary.json``).

  Args:
    program: the run.
    config: its options.
    plan: from ``plan``.
    iterations_per_chunk: iterations of one compiled call.
    name: the algorithm, for the progress bar.
    summarize: the loop's record of the chunks since the last one
      (leaves ``[chunks, seeds]``).
    evaluations: the names of ``program.evaluate``'s returns: ``{name:
      index}`` into its tuple (index 0 for a single return).
    losses: the record's loss terms to plot.
    measures: what ``env_steps_per_sec`` measures.
    **extra: more entries of the summary.
  """
  eval_keys = jax.random.split(
      jax.random.fold_in(jax.random.PRNGKey(config.seed), EVAL_STREAM),
      config.seeds)
  evaluate_seeds = jax.jit(jax.vmap(program.evaluate))

  def evaluate(runners) -> dict[str, Any]:
    returns = jax.device_get(evaluate_seeds(runners.agent.params, eval_keys))
    returns = returns if isinstance(returns, tuple) else (returns,)
    record = {}
    for eval_name, index in evaluations.items():
      record.update(per_seed_record(eval_name, returns[index]))
    return record

  _, history = experiment.fit(
      as_objective(program, iterations_per_chunk), experiment.NoData(),
      config, plan, evaluate_fn=evaluate, summarize=summarize,
      desc=f"{name} on {config.env}")
  workdir = pathlib.Path(config.workdir)
  if parallel.is_main_process():
    plot_returns(history.records, workdir / "returns.png", config.env, losses)
  last = history.last
  trained_steps = history.records[-1]["step"]
  first_eval = next(iter(evaluations))
  summary = {
      "env": config.env,
      **{key: last[key] for eval_name in evaluations
         for key in (eval_name, f"{eval_name}_per_seed")},
      "eval_return_std": float(np.std(last[f"{first_eval}_per_seed"])),
      "eval_episodes": config.eval_episodes,
      "env_steps": trained_steps,
      "seeds": config.seeds,
      "train_seconds": history.train_seconds,
      "compile_seconds": history.compile_seconds,
      "env_steps_per_sec": config.seeds * trained_steps / history.train_seconds,
      "env_steps_per_sec_per_seed": trained_steps / history.train_seconds,
      "env_steps_per_sec_measures": (
          "environment steps per second of the compiled training chunks "
          f"({measures}), all seeds together, excluding compilation, "
          "checkpoints and evaluation"),
      "num_params": history.num_params,
      "device": jax.devices()[0].device_kind,
      "num_devices": plan.mesh.size,
      **history.placement,
      **extra,
      "config": experiment_dict(config)}
  if parallel.is_main_process():
    files.write_json(workdir / SUMMARY_FILE, summary)
  return summary

"""A DQN experiment in a workdir: ``train_and_evaluate(config, workdir)``.

Trains ``config.seeds`` seeds at once (``jax.vmap(chunk)``) on the common
loop (``dlcore.loop.train``): one call is one compiled chunk of
``config.log_every`` environment steps, the seeds spread evenly over
``seed_mesh(config)``'s devices by ``config.parallel`` (seeds are
independent: no communication, and each seed's numbers do not depend on
the device count). Writes into ``workdir`` (process 0 only) what the loop
writes — ``metrics.jsonl`` (one record per chunk: environment steps per
seed, the mean return of the episodes finished in it per seed and mean,
mean loss, Q value and gradient norm, epsilon, seconds, env steps/s),
``tensorboard/``, ``model.txt`` and ``checkpoints/`` (the full runner
state: agents, replay buffers, environment states, keys; ``resume=True``
continues exactly) — and:

- ``summary.json``: per-seed and mean final greedy ``eval_return``,
  ``env_steps_per_sec`` (all seeds; ``..._per_seed`` too),
  ``train_seconds`` (compiled chunks only), ``compile_seconds`` (ahead of
  time), ``num_devices``, the config;
- ``returns.png``: training return against environment steps, mean over
  seeds with the min-max spread, and the loss.

Every option is checked before the workdir is touched; a NaN or infinite
loss stops the run with ``NonFiniteLossError`` before the bad chunk is
saved.
"""

import itertools
import pathlib
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np

from dlcore import files, loop, parallel, plots
from dlcore.config import experiment_dict
from dlcore.errors import ConfigError
from dlcore.qlearning.config import DqnConfig
from dlcore.writers import SUMMARY_FILE
from dlcore.qlearning.train import make_dqn_program

EVAL_STREAM = 1  # fold_in(seed_key, EVAL_STREAM) seeds a seed's evaluation.


def seed_keys(config: DqnConfig) -> jax.Array:
  """One key per seed, ``[seeds, 2]``: every draw of seed ``i`` derives from row ``i``."""
  return jax.random.split(jax.random.PRNGKey(config.seed), config.seeds)


def seed_mesh(config: DqnConfig) -> jax.sharding.Mesh:
  """The devices the seeds spread over: ``--devices``, or the most that divide ``--seeds``."""
  if config.devices is None:
    count = max(d for d in range(1, min(config.seeds, jax.device_count()) + 1)
                if config.seeds % d == 0)
  else:
    count = config.devices
    if count >= 1 and config.seeds % count:
      raise ConfigError(f"option seeds {config.seeds} does not divide by "
                        f"option devices {count}; choose a multiple of "
                        f"{count} seeds or devices that divide the seeds")
  return parallel.data_mesh(count)


def _per_seed(fn, mesh, mechanism: str, **options):
  """``fn`` vmapped over its first argument's seeds, split over ``mesh`` (outputs too).

  Further arguments (a step's batch and key) are shared by every seed.
  """
  def mapped(xs, *rest, axis_name):
    del axis_name  # Seeds are independent: no collective.
    return jax.vmap(lambda x: fn(x, *rest))(xs)
  return parallel.wrap(mapped, mesh, mechanism, sharded_argnums=(0,),
                       shard_outputs=True, **options)


def _finite_or_none(value: float) -> float | None:
  return float(value) if np.isfinite(value) else None


def summarize(metrics: dict[str, np.ndarray]) -> dict[str, Any]:
  """The record of the chunks since the last one (leaves ``[chunks, seeds]``)."""
  episodes = metrics["episodes"].sum(0)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_seed = [_finite_or_none(r)
                for r in metrics["return_sum"].sum(0) / episodes]
  finished = [r for r in per_seed if r is not None]
  updates = metrics["updates"].sum(0)  # Per seed.
  record = {"episode_return": float(np.mean(finished)) if finished else None,
            "episode_return_per_seed": per_seed,
            "episodes": int(episodes.sum()),
            "updates": int(updates[0]),
            "epsilon": float(metrics["epsilon"][-1, 0])}
  for name in ("loss", "q_mean", "grad_norm"):
    if name in metrics:  # grad_norm is reported only when clipping.
      per_update = (metrics[name] * metrics["updates"]).sum(0) / np.maximum(
          updates, 1)  # Each chunk's mean weighed by its updates.
      record[name] = float(np.mean(per_update)) if (updates > 0).all() else None
  return record


def plot_returns(records: list[dict[str, Any]], path: pathlib.Path,
                 title: str) -> None:
  """Training return (mean over seeds, min-max band) and loss against env steps."""
  steps = np.array([r["step"] for r in records])
  returns = np.array([[np.nan if v is None else v
                       for v in r["episode_return_per_seed"]]
                      for r in records])
  fig, (ax_return, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
  with np.errstate(all="ignore"):
    ax_return.fill_between(steps, np.nanmin(returns, 1), np.nanmax(returns, 1),
                           alpha=0.25, label="min-max over seeds")
    ax_return.plot(steps, np.nanmean(returns, 1), label="mean over seeds")
  ax_return.set_title(f"{title}: training episode return")
  losses = [(r["step"], r["loss"]) for r in records if r["loss"] is not None]
  if losses:
    ax_loss.plot(*zip(*losses), label="TD loss")
    ax_loss.set_yscale("log")
  ax_loss.set_title("loss (mean over seeds)")
  for ax in (ax_return, ax_loss):
    ax.set_xlabel("environment steps (per seed)")
    ax.grid(alpha=0.3)
    ax.legend()
  plots.save_figure(fig, path)


def train_and_evaluate(config: DqnConfig,
                       workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains, evaluates greedily and writes the workdir; returns the summary.

  ``workdir``, when given, replaces ``config.workdir``.
  """
  workdir = pathlib.Path(workdir or config.workdir)
  program = make_dqn_program(config)  # Validates before touching the workdir.
  mesh = seed_mesh(config)
  workdir = files.prepare_workdir(workdir)
  keys = parallel.shard_batch(np.asarray(seed_keys(config)), mesh)
  chunk_length = program.steps_per_chunk
  every = loop.LoopConfig(
      log_every=chunk_length, eval_every=0, sample_every=0,
      checkpoint_every=-(-config.checkpoint_every // chunk_length)
      * chunk_length)
  evaluate_seeds = jax.jit(jax.vmap(program.evaluate))
  eval_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, EVAL_STREAM)

  def evaluate(runners) -> dict[str, Any]:
    returns = jax.device_get(evaluate_seeds(runners.agent.params, eval_keys))
    return {"eval_return": float(np.mean(returns)),
            "eval_return_per_seed": [float(r) for r in returns]}

  # The runner carries its own keys: the loop's batch and key go unused.
  chunk = _per_seed(lambda runner, batch, key: program.chunk(runner), mesh,
                    config.parallel, donate_argnums=0)
  _, history = loop.train(
      _per_seed(program.init, mesh, config.parallel)(keys), chunk,
      lambda start: itertools.repeat(None), key=jax.random.PRNGKey(config.seed),
      num_steps=program.num_chunks * chunk_length, workdir=workdir,
      every=every, evaluate=evaluate, resume=config.resume,
      config=experiment_dict(config), steps_per_call=chunk_length,
      summarize=summarize, desc=f"DQN on {config.env}, {mesh.size} device(s)")
  if parallel.is_main_process():
    plot_returns(history.records, workdir / "returns.png", config.env)
  last = history.last
  trained_steps = history.records[-1]["step"]
  summary = {
      "env": config.env,
      "eval_return": last["eval_return"],
      "eval_return_per_seed": last["eval_return_per_seed"],
      "eval_return_std": float(np.std(last["eval_return_per_seed"])),
      "eval_episodes": config.eval_episodes,
      "env_steps": trained_steps,
      "seeds": config.seeds,
      "train_seconds": history.train_seconds,
      "compile_seconds": history.compile_seconds,
      "env_steps_per_sec": config.seeds * trained_steps / history.train_seconds,
      "env_steps_per_sec_per_seed": trained_steps / history.train_seconds,
      "env_steps_per_sec_measures": (
          "environment steps per second of the compiled training chunks "
          "(acting, storing, sampling and learning), all seeds together, "
          "excluding compilation, checkpoints and evaluation"),
      "num_params": history.num_params,
      "device": jax.devices()[0].device_kind,
      "num_devices": mesh.size,
      "config": experiment_dict(config)}
  if parallel.is_main_process():
    files.write_json(workdir / SUMMARY_FILE, summary)
  return summary

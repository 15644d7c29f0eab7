"""A DQN experiment in a workdir: ``train_and_evaluate(config, workdir)``.

Trains ``config.seeds`` seeds at once (``jax.vmap(chunk)``), one compiled
chunk of ``config.log_every`` environment steps per call, the seeds spread
evenly over ``seed_mesh(config)``'s devices by ``config.parallel`` (seeds
are independent: no communication, and each seed's numbers do not depend on
the device count). Writes into ``workdir`` (process 0 only):

- ``metrics.jsonl``: one record per chunk: environment steps (per seed),
  the mean return of the episodes finished in the chunk (per seed and mean),
  mean loss, Q value and gradient norm, epsilon, seconds, env steps/s;
- ``summary.json``: per-seed and mean final greedy ``eval_return``,
  ``env_steps_per_sec`` (all seeds; ``..._per_seed`` too),
  ``train_seconds`` (compiled chunks only), ``compile_seconds`` (compilation
  and one warm-up chunk), ``num_devices``, the config;
- ``returns.png``: training return against environment steps, mean over
  seeds with the min-max spread, and the loss;
- ``checkpoints/``: the full runner state (agents, replay buffers,
  environment states, keys) every ``checkpoint_every`` steps and at the end,
  so ``resume=True`` continues exactly where the run stopped.

Every option is checked before the workdir is touched; a NaN or infinite
loss stops the run with ``NonFiniteLossError`` before anything of the bad
chunk is saved.
"""

import pathlib
import time
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
import tqdm

from dlcore import io, parallel, plots
from dlcore.checkpoint import Checkpointer
from dlcore.config import to_dict
from dlcore.errors import ConfigError, NonFiniteLossError
from dlcore.loop import CHECKPOINT_DIR, METRICS_FILE, restore_or_start
from dlcore.qlearning.config import DqnConfig
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
      raise ConfigError(f"--seeds {config.seeds} does not divide by --devices "
                        f"{count}; choose a multiple of {count} seeds or "
                        "a --devices that divides the seeds")
  return parallel.data_mesh(count)


def _per_seed(fn, mesh, mechanism: str, **options):
  """``jax.vmap(fn)`` over seeds, the seeds split over ``mesh`` (outputs too)."""
  def mapped(xs, *, axis_name):
    del axis_name  # Seeds are independent: no collective.
    return jax.vmap(fn)(xs)
  return parallel.wrap(mapped, mesh, mechanism, sharded_argnums=(0,),
                       shard_outputs=True, **options)


def _finite_or_none(value: float) -> float | None:
  return float(value) if np.isfinite(value) else None


def _record(metrics: dict[str, np.ndarray], seconds: float) -> dict[str, Any]:
  """The ``metrics.jsonl`` record of one chunk (``metrics`` leaves ``[seeds]``)."""
  per_seed = [_finite_or_none(r) for r in metrics["episode_return"]]
  finished = [r for r in per_seed if r is not None]
  steps = int(metrics["env_steps"][0])
  learned = metrics["updates"] > 0
  record = {"step": steps, "seconds": seconds,
            "episode_return": float(np.mean(finished)) if finished else None,
            "episode_return_per_seed": per_seed,
            "episodes": int(np.sum(metrics["episodes"])),
            "updates": int(metrics["updates"][0]),
            "epsilon": float(metrics["epsilon"][0])}
  for name in ("loss", "q_mean", "grad_norm"):
    if name not in metrics:  # grad_norm is reported only when clipping.
      continue
    record[name] = float(np.mean(metrics[name])) if learned.all() else None
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
                       workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains, evaluates greedily and writes the workdir; returns the summary."""
  program = make_dqn_program(config)  # Validates before touching the workdir.
  mesh = seed_mesh(config)
  workdir = io.prepare_workdir(workdir)
  keys = parallel.shard_batch(np.asarray(seed_keys(config)), mesh)
  init = _per_seed(program.init, mesh, config.parallel)
  runners = init(keys)
  checkpointer = Checkpointer(workdir / CHECKPOINT_DIR)
  try:
    runners, start, records = restore_or_start(runners, workdir, config.resume,
                                               checkpointer)
    tic = time.perf_counter()
    chunk = _per_seed(program.chunk, mesh, config.parallel, donate_argnums=0)
    jax.block_until_ready(chunk(init(keys)))  # Compiles, on a throwaway run.
    compile_seconds = time.perf_counter() - tic
    total = program.num_chunks * program.steps_per_chunk
    chunks_per_checkpoint = -(-config.checkpoint_every
                              // program.steps_per_chunk)
    bar = tqdm.tqdm(total=total, initial=start,
                    desc=f"DQN on {config.env}, {mesh.size} device(s)",
                    unit="step", unit_scale=True, dynamic_ncols=True)
    with bar:
      for index in range(start // program.steps_per_chunk, program.num_chunks):
        tic = time.perf_counter()
        runners, metrics = chunk(runners)
        metrics = jax.device_get(metrics)
        record = _record(metrics, time.perf_counter() - tic)
        bad_steps = metrics["first_nonfinite_step"]
        if np.any(bad_steps >= 0):
          raise NonFiniteLossError(int(bad_steps[bad_steps >= 0].min()), "loss")
        records.append(record)
        if parallel.is_main_process():
          io.write_jsonl(workdir / METRICS_FILE, records)
        done = index + 1
        if done % chunks_per_checkpoint == 0 or done == program.num_chunks:
          checkpointer.save(record["step"], runners,
                            meta={"step": record["step"]})
        bar.set_postfix(return_=record["episode_return"],
                        epsilon=round(record["epsilon"], 3), refresh=False)
        bar.update(program.steps_per_chunk)
  finally:
    checkpointer.close()

  eval_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, EVAL_STREAM)
  eval_returns = jax.device_get(jax.jit(jax.vmap(program.evaluate))(
      runners.agent.params, eval_keys))
  if parallel.is_main_process():
    plot_returns(records, workdir / "returns.png", config.env)
  train_seconds = sum(r["seconds"] for r in records)
  trained_steps = records[-1]["step"]
  summary = {
      "env": config.env,
      "eval_return": float(np.mean(eval_returns)),
      "eval_return_per_seed": [float(r) for r in eval_returns],
      "eval_return_std": float(np.std(eval_returns)),
      "eval_episodes": config.eval_episodes,
      "env_steps": trained_steps,
      "seeds": config.seeds,
      "train_seconds": train_seconds,
      "compile_seconds": compile_seconds,
      "env_steps_per_sec": config.seeds * trained_steps / train_seconds,
      "env_steps_per_sec_per_seed": trained_steps / train_seconds,
      "env_steps_per_sec_measures": (
          "environment steps per second of the compiled training chunks "
          "(acting, storing, sampling and learning), all seeds together, "
          "excluding compilation, checkpoints and evaluation"),
      "device": jax.devices()[0].device_kind,
      "num_devices": mesh.size,
      "config": to_dict(config)}
  if parallel.is_main_process():
    io.write_json(workdir / "summary.json", summary)
  return summary

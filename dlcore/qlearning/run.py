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

import pathlib
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dlcore import parallel, plots
from dlcore.qlearning.config import DqnConfig
from dlcore.qlearning.train import make_dqn_program
from dlcore.rl.run import per_seed_record, train_seeds, write_summary
from dlcore.rl.seeds import episode_returns


def summarize(metrics: dict[str, np.ndarray]) -> dict[str, Any]:
  """The record of the chunks since the last one (leaves ``[chunks, seeds]``)."""
  updates = metrics["updates"].sum(0)  # Per seed.
  record = {**episode_returns(metrics),
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
  history, mesh = train_seeds(
      program, config, workdir, name="DQN", summarize=summarize,
      evaluate=lambda returns: per_seed_record("eval_return", returns))
  if parallel.is_main_process():
    plot_returns(history.records, workdir / "returns.png", config.env)
  return write_summary(
      config, history, mesh, workdir,
      eval_names=("eval_return", "eval_return_per_seed"),
      measures="acting, storing, sampling and learning")

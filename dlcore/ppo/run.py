"""A PPO experiment in a workdir: ``train_and_evaluate(config, workdir)``.

Trains ``config.seeds`` seeds at once (``jax.vmap(chunk)``) on the common
loop (``dlcore.loop.train``): one call is one compiled chunk of
``config.log_every`` environment steps, the seeds spread evenly over
``seed_mesh(config)``'s devices by ``config.parallel`` (seeds are
independent: no communication, and each seed's numbers do not depend on
the device count). Writes into ``workdir`` (process 0 only) what the loop
writes — ``metrics.jsonl`` (one record per chunk: environment steps per
seed, episodes finished and their mean return per seed and mean, the mean
loss, policy loss, value loss, entropy, approximate KL and clip fraction
of the chunk's updates, seconds, env steps/s), ``tensorboard/``,
``model.txt`` and ``checkpoints/`` (the full runner state: agents,
optimizer states, environment states, keys; ``resume=True`` continues
exactly) — and:

- ``summary.json``: per-seed and mean final ``eval_return`` (greedy: the
  policy's mode) and ``eval_return_stochastic`` (sampled actions),
  ``env_steps_per_sec`` (all seeds; ``..._per_seed`` too),
  ``train_seconds`` (compiled chunks only), ``compile_seconds`` (ahead of
  time), ``num_devices``, the config;
- ``returns.png``: training return against environment steps, mean over
  seeds with a +-1 standard deviation band, and the loss terms.

Every option is checked before the workdir is touched; a NaN or infinite
metric stops the run with ``NonFiniteLossError`` (exit 3) naming the chunk,
before the bad chunk is saved.
"""

import pathlib
import warnings
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from dlcore import parallel, plots
from dlcore.ppo.config import PpoConfig
from dlcore.ppo.train import UPDATE_METRICS, make_ppo_program
from dlcore.rl.run import per_seed_record, train_seeds, write_summary
from dlcore.rl.seeds import episode_returns


def summarize(metrics: dict[str, np.ndarray]) -> dict[str, Any]:
  """The record of the chunks since the last one (leaves ``[chunks, seeds]``).

  Every chunk makes the same number of updates, so a loss term is the plain
  mean over chunks and seeds.
  """
  return {**episode_returns(metrics),
          **{name: float(np.mean(metrics[name])) for name in UPDATE_METRICS}}


def plot_returns(records: list[dict[str, Any]], path: pathlib.Path,
                 title: str) -> None:
  """Training return (mean over seeds, +-1 std band) and loss terms against env steps."""
  steps = np.array([r["step"] for r in records])
  returns = np.array([[np.nan if v is None else v
                       for v in r["episode_return_per_seed"]]
                      for r in records])
  fig, (ax_return, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.6))
  with warnings.catch_warnings():  # Chunks in which no episode ended: NaN.
    warnings.simplefilter("ignore", RuntimeWarning)
    mean, std = np.nanmean(returns, 1), np.nanstd(returns, 1)
  ax_return.fill_between(steps, mean - std, mean + std, alpha=0.25,
                         label="+-1 std over seeds")
  ax_return.plot(steps, mean, label="mean over seeds")
  ax_return.set_title(f"{title}: training episode return")
  for name in ("policy_loss", "value_loss", "entropy"):
    ax_loss.plot(steps, [r[name] for r in records], label=name)
  ax_loss.set_yscale("symlog", linthresh=1e-2)
  ax_loss.set_title("loss terms (mean over seeds)")
  for ax in (ax_return, ax_loss):
    ax.set_xlabel("environment steps (per seed)")
    ax.grid(alpha=0.3)
    ax.legend()
  plots.save_figure(fig, path)


def train_and_evaluate(config: PpoConfig,
                       workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains, evaluates (greedy and stochastic) and writes the workdir; returns the summary.

  ``workdir``, when given, replaces ``config.workdir``.
  """
  workdir = pathlib.Path(workdir or config.workdir)
  program = make_ppo_program(config)  # Validates before touching the workdir.
  history, mesh = train_seeds(
      program, config, workdir, name="PPO", summarize=summarize,
      evaluate=lambda returns: {
          **per_seed_record("eval_return", returns[0]),
          **per_seed_record("eval_return_stochastic", returns[1])})
  if parallel.is_main_process():
    plot_returns(history.records, workdir / "returns.png", config.env)
  return write_summary(
      config, history, mesh, workdir,
      eval_names=("eval_return", "eval_return_per_seed",
                  "eval_return_stochastic", "eval_return_stochastic_per_seed"),
      measures="rollouts, GAE and updates",
      gradient_updates=program.num_updates)

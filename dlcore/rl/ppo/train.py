"""A PPO experiment: ``train_and_evaluate(config)``.

Trains ``config.seeds`` seeds at once on the common driver
(``dlcore.rl.train``): one call is one compiled chunk of
``config.chunk_steps`` environment steps per seed. Writes into
``config.workdir`` what that driver writes — ``metrics.jsonl`` (one record
per ``log_every`` steps: environment steps per seed, episodes finished and
their mean return per seed and mean, the mean loss, policy loss, value
loss, entropy, approximate KL and clip fraction of the updates, seconds,
env steps/s), ``tensorboard/``, ``model.txt``, ``checkpoints/`` (the full
runner state: agents, optimizer states, environment states, keys;
``resume=True`` continues exactly), ``summary.json`` (per-seed and mean
``eval_return``, greedy: the policy's mode, and
``eval_return_stochastic``, sampled actions) and ``returns.png``.

Every option is checked before the workdir is touched; a NaN or infinite
metric stops the run with ``NonFiniteLossError`` (exit 3) naming the chunk,
before the bad chunk is saved.
"""

from typing import Any

import numpy as np

from dlcore.config import validate
from dlcore.rl import train as rl_train
from dlcore.rl.ppo.config import PpoConfig, check_config, iterations
from dlcore.rl.ppo.objective import UPDATE_METRICS, make_ppo_program, num_updates
from dlcore.rl.seeds import episode_returns


def summarize(metrics: dict[str, np.ndarray]) -> dict[str, Any]:
  """The record of the chunks since the last one (leaves ``[chunks, seeds]``).

  Every chunk makes the same number of updates, so a loss term is the plain
  mean over chunks and seeds.
  """
  return {**episode_returns(metrics),
          **{name: float(np.mean(metrics[name])) for name in UPDATE_METRICS}}


def train_and_evaluate(config: PpoConfig) -> dict[str, Any]:
  """Trains, evaluates (greedy and stochastic) and writes the workdir; returns the summary."""
  validate(config)
  check_config(config)
  per_chunk, chunks = iterations(config)
  plan = rl_train.plan(
      config, steps_per_iteration=config.num_envs * config.num_steps,
      iterations_per_chunk=per_chunk, chunks=chunks,
      num_updates=num_updates(config))
  return rl_train.train_program(
      make_ppo_program(config, plan.optimizers["optimizer"]), config, plan,
      iterations_per_chunk=per_chunk, name="PPO", summarize=summarize,
      evaluations={"eval_return": 0, "eval_return_stochastic": 1},
      losses=("policy_loss", "value_loss", "entropy"),
      measures="rollouts, GAE and updates", gradient_updates=num_updates(config))

"""A DQN experiment: ``train_and_evaluate(config)``.

Trains ``config.seeds`` seeds at once on the common driver
(``dlcore.rl.train``): one call is one compiled chunk of
``config.chunk_steps`` environment steps per seed. Writes into
``config.workdir`` what that driver writes — ``metrics.jsonl`` (one record
per ``log_every`` steps: environment steps per seed, the mean return of the
episodes finished per seed and mean, mean loss, Q value and gradient norm,
epsilon, seconds, env steps/s), ``tensorboard/``, ``model.txt``,
``checkpoints/`` (the full runner state: agents, replay buffers,
environment states, keys; ``resume=True`` continues exactly),
``summary.json`` (the greedy ``eval_return`` per seed and mean) and
``returns.png``.

Every option is checked before the workdir is touched; a NaN or infinite
loss stops the run with ``NonFiniteLossError`` before the bad chunk is
saved.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcore.config import validate
from dlcore.models.qnetworks import create_q_network
from dlcore.rl import train as rl_train
from dlcore.rl.dqn.config import DqnConfig, check_config, iterations
from dlcore.rl.dqn.objective import make_dqn_program
from dlcore.rl.dqn.state import num_updates
from dlcore.rl.envs import make_env
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


def train_and_evaluate(config: DqnConfig) -> dict[str, Any]:
  """Trains, evaluates greedily and writes the workdir; returns the summary."""
  validate(config)
  check_config(config)
  env, env_params = make_env(config.env)
  obs_shape = tuple(env.observation_space(env_params).shape)
  shapes = jax.eval_shape(
      create_q_network(obs_shape, int(env.action_space(env_params).n),
                       dueling=config.dueling).init,
      jax.random.PRNGKey(0), jnp.zeros((1, *obs_shape)))["params"]
  per_chunk, chunks = iterations(config)
  plan = rl_train.plan(config, steps_per_iteration=config.num_envs,
                       iterations_per_chunk=per_chunk, chunks=chunks,
                       num_updates=num_updates(config), optimizer_shapes=shapes)
  return rl_train.train_program(
      make_dqn_program(config, plan.optimizers["optimizer"]), config, plan,
      iterations_per_chunk=per_chunk, name="DQN", summarize=summarize,
      evaluations={"eval_return": 0}, losses=("loss",),
      measures="acting, storing, sampling and learning")

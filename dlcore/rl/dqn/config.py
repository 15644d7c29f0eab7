"""``DqnConfig``: every option of a DQN run, with the reference defaults.

The defaults are the common CartPole-v1 reference hyperparameters (CleanRL
``dqn_jax.py``, PureJaxRL ``dqn.py``): 500k environment steps over 10
parallel environments, a 10,000-transition buffer, batches of 128, Adam at
2.5e-4, gamma 0.99, a hard target update every 500 environment steps,
epsilon 1.0 -> 0.05 over the first half, learning from step 10,000 on with
one update every 10 environment steps; one compiled chunk is 25,000
environment steps. ``check_config`` turns options that do not fit together
into one-sentence ``ConfigError`` s before anything is written.
"""

import dataclasses

from dlcore import optim
from dlcore.config import field
from dlcore.errors import ConfigError
from dlcore.rl.config import RlConfig
from dlcore.rl.dqn.steps import TD_LOSSES
from dlcore.rl.envs import DISCRETE_ENVS

LOSSES = tuple(TD_LOSSES)


@dataclasses.dataclass(frozen=True)
class DqnConfig(RlConfig):
  """Options of ``experiments/dqn.py``; environment steps count all parallel envs."""
  env: str = field("CartPole-v1", "gymnax environment with discrete actions",
                   choices=DISCRETE_ENVS)
  num_envs: int = field(10, "parallel environments per seed", valid="[1, inf)")
  buffer_size: int = field(10_000, "replay buffer capacity (transitions)",
                           valid="[1, inf)")
  batch_size: int = field(128, "transitions per gradient update",
                          valid="[1, inf)")
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=2.5e-4), "the Q-network's "
      "optimizer (schedules count gradient updates)")
  gamma: float = field(0.99, "discount factor", valid="[0, 1]")
  double: bool = field(False, "Double DQN target (online argmax, target value)")
  dueling: bool = field(False, "dueling head: V(s) + A(s, a) - mean A(s, .)")
  loss: str = field("mse", "TD loss: squared error or Huber (delta 1)",
                    choices=LOSSES)
  learning_starts: int = field(10_000, "environment steps before learning",
                               valid="[0, inf)")
  train_every: int = field(10, "environment steps per gradient update",
                           valid="[1, inf)")
  target_update_every: int = field(500, "environment steps between target "
                                   "updates (a multiple of --train-every)",
                                   valid="[1, inf)")
  tau: float = field(1.0, "target update target <- tau * online + (1 - tau) "
                     "* target: 1 is a hard copy, below 1 Polyak averaging",
                     valid="(0, 1]")
  epsilon_start: float = field(1.0, "initial exploration rate", valid="[0, 1]")
  epsilon_end: float = field(0.05, "final exploration rate", valid="[0, 1]")
  exploration_fraction: float = field(0.5, "fraction of --total-steps over "
                                      "which epsilon decays linearly",
                                      valid="(0, 1]")
  dtype: str = field("float32", "the Q-network's computation dtype; "
                     "parameters stay float32", choices=("float32", "bfloat16"))
  workdir: str = field("runs/dqn", "where metrics, summary, plot and "
                       "checkpoints go")


def iterations(config: DqnConfig) -> tuple[int, int]:
  """``(iterations per chunk, chunks)``: an iteration is one vectorised step.

  ``chunk_steps`` in whole vectorised steps (at least one), and
  ``total_steps`` rounded up to whole chunks.
  """
  per_chunk = max(1, config.chunk_steps // config.num_envs)
  chunk = per_chunk * config.num_envs
  return per_chunk, -(-config.total_steps // chunk)


def run_steps(config: DqnConfig) -> int:
  """Environment steps a run takes: ``total_steps`` rounded up to whole chunks."""
  per_chunk, chunks = iterations(config)
  return per_chunk * chunks * config.num_envs


def first_update_step(config: DqnConfig) -> int:
  """The environment step of the first gradient update.

  It is the first vectorised step that has ``learning_starts`` environment
  steps (and a batch) stored and is a multiple of ``train_every``.
  """
  iters_per_update = max(1, config.train_every // config.num_envs)
  stored = max(config.learning_starts, config.batch_size)
  iteration = -(-stored // config.num_envs)
  iteration = -(-iteration // iters_per_update) * iters_per_update
  return iteration * config.num_envs


def check_config(config: DqnConfig) -> None:
  """Raises ``ConfigError`` (one sentence) for options that do not fit together."""
  if config.batch_size > config.buffer_size:
    raise ConfigError(f"option batch_size {config.batch_size} is larger "
                      "than the replay buffer (option buffer_size "
                      f"{config.buffer_size}); lower the batch or enlarge the "
                      "buffer")
  if config.buffer_size < config.learning_starts:
    raise ConfigError(f"option buffer_size {config.buffer_size} is smaller "
                      f"than option learning_starts {config.learning_starts}, "
                      "so the "
                      "first transitions would be overwritten before learning "
                      "starts; enlarge the buffer or start learning earlier")
  if config.num_envs > config.buffer_size:
    raise ConfigError(f"option num_envs {config.num_envs} is larger than the "
                      "replay buffer (option buffer_size "
                      f"{config.buffer_size})")
  if (config.train_every % config.num_envs
      and config.num_envs % config.train_every):
    raise ConfigError(f"option train_every {config.train_every} and option "
                      f"num_envs {config.num_envs} must divide one another "
                      "(one vectorised step adds num_envs environment steps)")
  if config.target_update_every % config.train_every:
    raise ConfigError("option target_update_every "
                      f"{config.target_update_every} must be a multiple of "
                      "option train_every "
                      f"{config.train_every}")
  if run_steps(config) < first_update_step(config):
    raise ConfigError(
        f"option total_steps {config.total_steps} (a run of "
        f"{run_steps(config)} environment steps in whole chunks) ends before "
        f"the first gradient update at environment step "
        f"{first_update_step(config)} (option learning_starts "
        f"{config.learning_starts}), so the agent would learn nothing; raise "
        "option total_steps or lower option learning_starts")

"""``DqnConfig``: every option of a DQN run, with the reference defaults.

The defaults are the common CartPole-v1 reference hyperparameters (CleanRL
``dqn_jax.py``, PureJaxRL ``dqn.py``): 500k environment steps over 10
parallel environments, a 10,000-transition buffer, batches of 128, Adam at
2.5e-4, gamma 0.99, a hard target update every 500 environment steps,
epsilon 1.0 -> 0.05 over the first half, learning from step 10,000 on with
one update every 10 environment steps. ``check_config`` turns inconsistent
options into one-sentence ``ConfigError`` s before anything is written.
"""

import dataclasses

from dlcore import optim, parallel
from dlcore.config import check_positive, field
from dlcore.errors import ConfigError
from dlcore.qlearning.steps import TD_LOSSES
from dlcore.rl.envs import DISCRETE_ENVS, check_env_name

LOSSES = tuple(TD_LOSSES)


@dataclasses.dataclass(frozen=True)
class DqnConfig(parallel.ParallelConfig):
  """Options of ``experiments/dqn.py``; environment steps count all parallel envs."""
  devices: int | None = field(None, "devices the seeds are spread over, "
                              "--seeds / --devices on each (must divide "
                              "--seeds; default: the most devices that "
                              "divide --seeds)")
  env: str = field("CartPole-v1", "gymnax environment with discrete actions: "
                   + ", ".join(DISCRETE_ENVS))
  total_steps: int = field(500_000, "environment steps per seed (rounded up "
                           "to whole --log-every chunks)")
  num_envs: int = field(10, "parallel environments per seed")
  seeds: int = field(1, "independent seeds trained at once (a vmap over "
                     "seeds on each device)")
  seed: int = field(0, "base seed; seed i trains from split(PRNGKey(seed))[i]")
  buffer_size: int = field(10_000, "replay buffer capacity (transitions)")
  batch_size: int = field(128, "transitions per gradient update")
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=2.5e-4), "the Q-network's "
      "optimizer (schedules count gradient updates)")
  gamma: float = field(0.99, "discount factor")
  double: bool = field(False, "Double DQN target (online argmax, target value)")
  dueling: bool = field(False, "dueling head: V(s) + A(s, a) - mean A(s, .)")
  loss: str = field("mse", "TD loss: squared error or Huber (delta 1)",
                    choices=LOSSES)
  learning_starts: int = field(10_000, "environment steps before learning")
  train_every: int = field(10, "environment steps per gradient update")
  target_update_every: int = field(500, "environment steps between target "
                                   "updates (a multiple of --train-every)")
  tau: float = field(1.0, "target update target <- tau * online + (1 - tau) "
                     "* target: 1 is a hard copy, below 1 Polyak averaging")
  epsilon_start: float = field(1.0, "initial exploration rate")
  epsilon_end: float = field(0.05, "final exploration rate")
  exploration_fraction: float = field(0.5, "fraction of --total-steps over "
                                      "which epsilon decays linearly")
  eval_episodes: int = field(100, "greedy (epsilon 0) episodes per seed in "
                             "the final evaluation")
  log_every: int = field(25_000, "environment steps per chunk: one compiled "
                         "call, one metrics record, one progress update")
  checkpoint_every: int = field(100_000, "environment steps between "
                                "checkpoints (rounded up to whole chunks; "
                                "the final agent is always saved)")
  dtype: str = field("float32", "the Q-network's computation dtype; "
                     "parameters stay float32", choices=("float32", "bfloat16"))
  workdir: str = field("runs/dqn", "where metrics, summary, plot and "
                       "checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")


def check_config(config: DqnConfig) -> None:
  """Raises ``ConfigError`` (one sentence) for any inconsistent option."""
  check_env_name(config.env)
  optim.check_optimizer(config.optimizer)
  check_positive(config, "total_steps", "num_envs", "seeds", "buffer_size",
                  "batch_size", "train_every", "target_update_every",
                  "eval_episodes", "log_every", "checkpoint_every")
  if config.loss not in LOSSES:
    raise ConfigError(f"unknown loss {config.loss!r}; choose one of "
                      f"{', '.join(LOSSES)}")
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
  if not 0.0 < config.tau <= 1.0:
    raise ConfigError(f"option tau must be in (0, 1], got {config.tau}")
  if not 0.0 <= config.gamma <= 1.0:
    raise ConfigError(f"option gamma must be in [0, 1], got {config.gamma}")
  if not 0.0 < config.exploration_fraction <= 1.0:
    raise ConfigError("option exploration_fraction must be in (0, 1], got "
                      f"{config.exploration_fraction}")
  for name in ("epsilon_start", "epsilon_end"):
    if not 0.0 <= getattr(config, name) <= 1.0:
      raise ConfigError(f"option {name} must be in [0, 1], got "
                        f"{getattr(config, name)}")

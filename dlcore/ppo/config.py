"""``PpoConfig``: every option of a PPO run, with the reference defaults.

The defaults are PureJaxRL's ``ppo.py`` CartPole-v1 hyperparameters: 4
parallel environments, 128-step rollouts, about 500k environment steps (976
iterations of 512 steps), 4 epochs of 4 minibatches, Adam at 2.5e-4
annealed linearly to 0 over the run's gradient updates, global-norm clipping
at 0.5, gamma 0.99, GAE lambda 0.95, clip 0.2, entropy coefficient 0.01,
value coefficient 0.5, a clipped value loss, tanh MLPs of 64 and 64 units.
(Adam's epsilon is optax's 1e-8 where PureJaxRL uses 1e-5.)
``check_config`` turns inconsistent options into one-sentence
``ConfigError`` s before anything is written.
"""

import dataclasses

from dlcore import optim, parallel
from dlcore.config import check_positive, field
from dlcore.errors import ConfigError
from dlcore.models.actor_critic import ACTIVATIONS
from dlcore.rl.envs import CONTINUOUS_ENVS, DISCRETE_ENVS, check_env_name


@dataclasses.dataclass(frozen=True)
class PpoConfig(parallel.ParallelConfig):
  """Options of ``experiments/ppo.py``; environment steps count all parallel envs."""
  devices: int | None = field(None, "devices the seeds are spread over, "
                              "--seeds / --devices on each (must divide "
                              "--seeds; default: the most devices that "
                              "divide --seeds)")
  env: str = field("CartPole-v1", "gymnax environment: "
                   + ", ".join(DISCRETE_ENVS + CONTINUOUS_ENVS))
  total_steps: int = field(500_000, "environment steps per seed: whole "
                           "iterations of --num-envs x --num-steps, rounded "
                           "down, then up to whole --log-every chunks")
  num_envs: int = field(4, "parallel environments per seed")
  num_steps: int = field(128, "steps of each environment per rollout")
  seeds: int = field(1, "independent seeds trained at once (a vmap over "
                     "seeds on each device)")
  seed: int = field(0, "base seed; seed i trains from split(PRNGKey(seed))[i]")
  update_epochs: int = field(4, "passes over each rollout")
  num_minibatches: int = field(4, "shuffled minibatches per pass (must "
                               "divide --num-envs x --num-steps)")
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=2.5e-4, schedule="linear",
                            clip_norm=0.5),
      "the actor-critic's optimizer (schedules count gradient updates: "
      "iterations x epochs x minibatches)")
  gamma: float = field(0.99, "discount factor")
  gae_lambda: float = field(0.95, "GAE's lambda")
  clip_eps: float = field(0.2, "clip range of the probability ratio (and of "
                          "the value change with --clip-value)")
  clip_value: bool = field(True, "clip the value loss as PPO's reference "
                           "implementations do")
  ent_coef: float = field(0.01, "weight of the entropy bonus")
  vf_coef: float = field(0.5, "weight of the value loss")
  reward_scale: float = field(1.0, "rewards are multiplied by this for "
                              "learning (returns are reported unscaled)")
  hidden_sizes: tuple[int, ...] = field((64, 64), "hidden units of the actor "
                                        "and of the critic")
  activation: str = field("tanh", "hidden activation",
                          choices=tuple(ACTIVATIONS))
  shared_torso: bool = field(False, "one torso for actor and critic")
  eval_episodes: int = field(100, "episodes per seed of each final "
                             "evaluation (greedy and stochastic)")
  log_every: int = field(8_192, "environment steps per chunk (whole "
                         "iterations): one compiled call, one metrics "
                         "record, one progress update")
  checkpoint_every: int = field(100_000, "environment steps between "
                                "checkpoints (rounded up to whole chunks; "
                                "the final agent is always saved)")
  workdir: str = field("runs/ppo", "where metrics, summary, plot and "
                       "checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")


def check_config(config: PpoConfig) -> None:
  """Raises ``ConfigError`` (one sentence) for any inconsistent option."""
  check_env_name(config.env, continuous=True)
  optim.check_optimizer(config.optimizer)
  check_positive(config, "total_steps", "num_envs", "num_steps", "seeds",
                  "update_epochs", "num_minibatches", "eval_episodes",
                  "log_every", "checkpoint_every")
  batch = config.num_envs * config.num_steps
  if batch % config.num_minibatches:
    raise ConfigError(f"option num_envs x option num_steps ({batch}) must "
                      "divide by option num_minibatches "
                      f"{config.num_minibatches}")
  if config.total_steps < batch:
    raise ConfigError(f"option total_steps {config.total_steps} is less than "
                      f"one rollout (option num_envs x option num_steps = "
                      f"{batch})")
  for name in ("gamma", "gae_lambda"):
    if not 0.0 <= getattr(config, name) <= 1.0:
      raise ConfigError(f"option {name} must be in [0, 1], got "
                        f"{getattr(config, name)}")
  for name in ("clip_eps", "reward_scale"):
    if not getattr(config, name) > 0:
      raise ConfigError(f"option {name} must be positive, got "
                        f"{getattr(config, name)}")
  for name in ("ent_coef", "vf_coef"):
    if not getattr(config, name) >= 0:
      raise ConfigError(f"option {name} must be at least 0, got "
                        f"{getattr(config, name)}")
  if not config.hidden_sizes or min(config.hidden_sizes) < 1:
    raise ConfigError("option hidden_sizes must be one or more positive "
                      f"widths, got {config.hidden_sizes}")
  if config.activation not in ACTIVATIONS:
    raise ConfigError(f"unknown activation {config.activation!r}; choose one "
                      f"of {', '.join(ACTIVATIONS)}")

"""``PpoConfig``: every option of a PPO run, with the reference defaults.

The defaults are PureJaxRL's ``ppo.py`` CartPole-v1 hyperparameters: 4
parallel environments, 128-step rollouts, about 500k environment steps (976
iterations of 512 steps), 4 epochs of 4 minibatches, Adam at 2.5e-4
annealed linearly to 0 over the run's gradient updates, global-norm clipping
at 0.5, gamma 0.99, GAE lambda 0.95, clip 0.2, entropy coefficient 0.01,
value coefficient 0.5, a clipped value loss, tanh MLPs of 64 and 64 units;
one compiled chunk is 16 iterations (8,192 environment steps). (Adam's
epsilon is optax's 1e-8 where PureJaxRL uses 1e-5.) ``check_config`` turns
options that do not fit together into one-sentence ``ConfigError`` s before
anything is written.
"""

import dataclasses

from dlcore import optim
from dlcore.config import STEPS_RANGE, Interval, field
from dlcore.errors import ConfigError
from dlcore.models.actor_critic import ACTIVATIONS
from dlcore.rl.config import RlConfig
from dlcore.rl.envs import CONTINUOUS_ENVS, DISCRETE_ENVS


@dataclasses.dataclass(frozen=True)
class PpoConfig(RlConfig):
  """Options of ``experiments/ppo.py``; environment steps count all parallel envs."""
  env: str = field("CartPole-v1", "gymnax environment",
                   choices=DISCRETE_ENVS + CONTINUOUS_ENVS)
  total_steps: int = field(500_000, "environment steps per seed: whole "
                           "iterations of --num-envs x --num-steps, rounded "
                           "down, then up to whole --chunk-steps chunks",
                           valid=STEPS_RANGE)
  chunk_steps: int = field(8_192, "environment steps per seed of one "
                           "compiled call (whole iterations of --num-envs x "
                           "--num-steps, at least one)", valid=STEPS_RANGE)
  num_envs: int = field(4, "parallel environments per seed", valid="[1, inf)")
  num_steps: int = field(128, "steps of each environment per rollout",
                          valid="[1, inf)")
  update_epochs: int = field(4, "passes over each rollout", valid="[1, inf)")
  num_minibatches: int = field(4, "shuffled minibatches per pass (must "
                               "divide --num-envs x --num-steps)",
                               valid="[1, inf)")
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=2.5e-4, schedule="linear",
                            clip_norm=0.5),
      "the actor-critic's optimizer (schedules count gradient updates: "
      "iterations x epochs x minibatches)")
  gamma: float = field(0.99, "discount factor", valid="[0, 1]")
  gae_lambda: float = field(0.95, "GAE's lambda", valid="[0, 1]")
  clip_eps: float = field(0.2, "clip range of the probability ratio (and of "
                          "the value change with --clip-value)",
                          valid="(0, inf)")
  clip_value: bool = field(True, "clip the value loss as PPO's reference "
                           "implementations do")
  ent_coef: float = field(0.01, "weight of the entropy bonus",
                          valid="[0, inf)")
  vf_coef: float = field(0.5, "weight of the value loss", valid="[0, inf)")
  reward_scale: float = field(1.0, "rewards are multiplied by this for "
                              "learning (returns are reported unscaled)",
                              valid="(0, inf)")
  hidden_size: int = field(64, "units of each hidden layer",
                           valid="[1, inf)")
  hidden_layers: int = field(2, "hidden layers of the actor and of the "
                             "critic", valid="[1, inf)")
  activation: str = field("tanh", "hidden activation",
                          choices=tuple(ACTIVATIONS))
  shared_torso: bool = field(False, "one torso for actor and critic")
  eval_episodes: int = field(100, "episodes per seed of each evaluation "
                             "(greedy and stochastic)", valid="[1, inf)")
  workdir: str = field("runs/ppo", "where metrics, summary, plot and "
                       "checkpoints go")


def iterations(config: PpoConfig) -> tuple[int, int]:
  """``(iterations per chunk, chunks)``: ``total_steps`` rounded down to
  whole iterations of ``num_envs x num_steps`` steps, then up to whole
  chunks of ``chunk_steps`` steps (at least one iteration each)."""
  batch = config.num_envs * config.num_steps
  per_chunk = max(1, config.chunk_steps // batch)
  return per_chunk, -(-(config.total_steps // batch) // per_chunk)


def check_config(config: PpoConfig) -> None:
  """Raises ``ConfigError`` (one sentence) for options that do not fit together."""
  batch = config.num_envs * config.num_steps
  if batch % config.num_minibatches:
    raise ConfigError(f"option num_envs x option num_steps ({batch}) must "
                      "divide by option num_minibatches "
                      f"{config.num_minibatches}")
  if config.total_steps < batch:
    raise ConfigError(f"option total_steps {config.total_steps} is less than "
                      f"one rollout (option num_envs x option num_steps = "
                      f"{batch})")
  per_chunk, chunks = iterations(config)
  if per_chunk * chunks * batch > Interval.parse(STEPS_RANGE).high:
    raise ConfigError(f"option total_steps {config.total_steps} in whole "
                      f"chunks ({per_chunk * chunks * batch} environment "
                      "steps) overflows the int32 step counters; lower it "
                      "or option chunk_steps")

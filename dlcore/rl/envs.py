"""JAX-native environments from gymnax, validated for value-based agents.

Usage::

  env, params = make_env("CartPole-v1")  # ConfigError on a bad name
  obs, env_state = env.reset(key, params)
  obs, env_state, reward, terminated, truncated, info = env.step(
      key, env_state, action, params)
  true_next_obs = info["final_observation"]

gymnax steps auto-reset: when an episode ends, ``obs`` is already the first
observation of the next episode, while ``info["final_observation"]`` is the
observation the action actually led to (for every step, ended or not).
``terminated`` marks a true end of the task (no value beyond it);
``truncated`` marks a time limit, after which the value still counts.
"""

import gymnax
from gymnax.environments import spaces

from dlcore.errors import ConfigError

# Environments with a discrete action space, usable by DQN.
DISCRETE_ENVS = (
    "CartPole-v1", "Acrobot-v1", "MountainCar-v0",
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar",
    "Seaquest-MinAtar", "SpaceInvaders-MinAtar",
    "Catch-bsuite", "DeepSea-bsuite", "MemoryChain-bsuite",
    "UmbrellaChain-bsuite", "DiscountingChain-bsuite",
    "FourRooms-misc", "Pong-misc",
)
# gymnax environments whose actions are real vectors: not for DQN.
CONTINUOUS_ENVS = ("Pendulum-v1", "MountainCarContinuous-v0",
                   "PointRobot-misc", "Reacher-misc", "Swimmer-misc")


def check_env_name(name: str) -> None:
  """Raises ``ConfigError`` unless ``name`` is one of ``DISCRETE_ENVS``."""
  if name in DISCRETE_ENVS:
    return
  valid = ", ".join(DISCRETE_ENVS)
  if name in CONTINUOUS_ENVS:
    raise ConfigError(f"environment {name!r} has continuous actions, which "
                      f"DQN cannot take; choose one of {valid}")
  raise ConfigError(f"unknown environment {name!r}; choose one of {valid}")


def make_env(name: str):
  """``(env, env_params)`` for a discrete-action gymnax environment ``name``."""
  check_env_name(name)
  env, params = gymnax.make(name)
  if not isinstance(env.action_space(params), spaces.Discrete):
    raise ConfigError(f"environment {name!r} has no discrete action space; "
                      f"choose one of {', '.join(DISCRETE_ENVS)}")
  return env, params

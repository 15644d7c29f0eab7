"""JAX-native environments from gymnax, validated for the agent that takes them.

Usage::

  env, params = make_env("CartPole-v1")  # ConfigError on a bad name
  env, params = make_env("Pendulum-v1", continuous=True)  # a policy's env
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


def check_env_name(name: str, continuous: bool = False) -> None:
  """Raises ``ConfigError`` unless ``name`` is one of ``DISCRETE_ENVS``
  (or of ``CONTINUOUS_ENVS`` too, with ``continuous``)."""
  allowed = DISCRETE_ENVS + (CONTINUOUS_ENVS if continuous else ())
  if name in allowed:
    return
  valid = ", ".join(allowed)
  if name in CONTINUOUS_ENVS:
    raise ConfigError(f"environment {name!r} has continuous actions, which "
                      f"DQN cannot take; choose one of {valid}")
  raise ConfigError(f"unknown environment {name!r}; choose one of {valid}")


def make_env(name: str, continuous: bool = False):
  """``(env, env_params)`` for gymnax environment ``name``.

  Its actions must be discrete (``spaces.Discrete``) or, with
  ``continuous``, also real vectors (``spaces.Box``).
  """
  check_env_name(name, continuous)
  env, params = gymnax.make(name)
  kinds = (spaces.Discrete, spaces.Box) if continuous else (spaces.Discrete,)
  if not isinstance(env.action_space(params), kinds):
    allowed = DISCRETE_ENVS + (CONTINUOUS_ENVS if continuous else ())
    raise ConfigError(f"environment {name!r} has an action space the agent "
                      f"cannot take; choose one of {', '.join(allowed)}")
  return env, params

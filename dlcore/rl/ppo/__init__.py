"""Policy gradients: PPO (clipped surrogate, GAE), trained end to end under jit on gymnax.

  dlcore.rl.ppo.config     ``PpoConfig`` and ``check_config``.
  dlcore.rl.ppo.state      ``create_ppo_state``: the actor-critic and its optimizer.
  dlcore.rl.ppo.losses     ``gae``, ``clipped_surrogate``, ``value_loss``.
  dlcore.rl.ppo.steps      ``ppo_step``: the update on one minibatch.
  dlcore.rl.ppo.objective  ``make_ppo_program``: the whole run as pure functions.
  dlcore.rl.ppo.train      ``train_and_evaluate(config)``.
"""

from dlcore.rl.ppo.config import PpoConfig, check_config
from dlcore.rl.ppo.losses import clipped_surrogate, gae, value_loss
from dlcore.rl.ppo.objective import make_ppo_program
from dlcore.rl.ppo.state import create_actor_critic, create_ppo_state
from dlcore.rl.ppo.steps import ppo_step
from dlcore.rl.ppo.train import train_and_evaluate

__all__ = ["PpoConfig", "check_config", "clipped_surrogate",
           "create_actor_critic", "create_ppo_state", "gae",
           "make_ppo_program", "ppo_step", "train_and_evaluate", "value_loss"]

"""Policy gradients: PPO (clipped surrogate, GAE), trained end to end under jit on gymnax.

  dlcore.ppo.config  ``PpoConfig`` and its checks.
  dlcore.ppo.state   ``create_ppo_state``: the actor-critic and its optimizer.
  dlcore.ppo.losses  ``gae``, ``clipped_surrogate``, ``value_loss``.
  dlcore.ppo.steps   ``ppo_step``: the update on one minibatch.
  dlcore.ppo.train   ``make_ppo_program`` / ``make_ppo_train``: the whole run as pure functions.
  dlcore.ppo.run     ``train_and_evaluate(config, workdir)``: the experiment.
"""

from dlcore.ppo.config import PpoConfig, check_config
from dlcore.ppo.losses import clipped_surrogate, gae, value_loss
from dlcore.ppo.run import train_and_evaluate
from dlcore.ppo.state import create_actor_critic, create_ppo_state
from dlcore.ppo.steps import ppo_step
from dlcore.ppo.train import (PpoProgram, Runner, make_ppo_program,
                              make_ppo_train)

__all__ = ["PpoConfig", "PpoProgram", "Runner", "check_config",
           "clipped_surrogate", "create_actor_critic", "create_ppo_state",
           "gae", "make_ppo_program", "make_ppo_train", "ppo_step",
           "train_and_evaluate", "value_loss"]

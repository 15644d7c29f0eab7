"""Q-learning: DQN and Double DQN, trained end to end under jit on gymnax.

  dlcore.rl.dqn.config     ``DqnConfig`` and ``check_config``.
  dlcore.rl.dqn.state      ``DQNState`` (online + target parameters), ``create_dqn_state``.
  dlcore.rl.dqn.steps      ``td_target`` and ``dqn_step``: the pure update.
  dlcore.rl.dqn.objective  ``make_dqn_program``: the whole run as pure functions.
  dlcore.rl.dqn.train      ``train_and_evaluate(config)``.
"""

from dlcore.rl.dqn.config import DqnConfig, check_config
from dlcore.rl.dqn.objective import make_dqn_program
from dlcore.rl.dqn.state import DQNState, create_dqn_state
from dlcore.rl.dqn.steps import dqn_step, td_target
from dlcore.rl.dqn.train import train_and_evaluate

__all__ = ["DQNState", "DqnConfig", "check_config", "create_dqn_state",
           "dqn_step", "make_dqn_program", "td_target", "train_and_evaluate"]

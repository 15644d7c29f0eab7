"""Q-learning: DQN and Double DQN, trained end to end under jit on gymnax.

  dlcore.qlearning.config  ``DqnConfig`` and its checks.
  dlcore.qlearning.state   ``DQNState`` (online + target parameters), ``create_dqn_state``.
  dlcore.qlearning.steps   ``td_target`` and ``dqn_step``: the pure update.
  dlcore.qlearning.train   ``make_dqn_program`` / ``make_dqn_train``: the whole run as pure functions.
  dlcore.qlearning.run     ``train_and_evaluate(config, workdir)``: the experiment.
"""

from dlcore.qlearning.config import DqnConfig, check_config
from dlcore.qlearning.run import train_and_evaluate
from dlcore.qlearning.state import DQNState, create_dqn_state
from dlcore.qlearning.steps import dqn_step, td_target
from dlcore.qlearning.train import (DqnProgram, Runner, make_dqn_program,
                                    make_dqn_train)

__all__ = ["DQNState", "DqnConfig", "DqnProgram", "Runner", "check_config",
           "create_dqn_state", "dqn_step", "make_dqn_program",
           "make_dqn_train", "td_target", "train_and_evaluate"]

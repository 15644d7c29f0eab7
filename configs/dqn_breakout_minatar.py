"""DQN on MinAtar Breakout: a larger buffer, smaller batches, slower target updates.

  python experiments/dqn.py --config configs/dqn_breakout_minatar.py
"""

from dlcore.rl.dqn import DqnConfig


def get_config() -> DqnConfig:
  return DqnConfig(env="Breakout-MinAtar", total_steps=250_000,
                   buffer_size=100_000, batch_size=32,
                   exploration_fraction=0.2, target_update_every=1000,
                   workdir="runs/dqn_breakout_minatar")

"""PPO on MinAtar Breakout with PureJaxRL's MinAtar hyperparameters.

  python experiments/ppo.py --config configs/ppo_breakout_minatar.py

64 environments x 128 steps per rollout, 4 epochs of 8 minibatches, Adam
5e-4 annealed, ReLU MLPs of 64 and 64 units over the flattened 10x10x4
grid; 3M environment steps (what about 15 minutes give on 2 shared
CPU cores).
"""

from dlcore.optim import OptimizerConfig
from dlcore.rl.ppo import PpoConfig


def get_config() -> PpoConfig:
  return PpoConfig(
      env="Breakout-MinAtar", total_steps=3_000_000, num_envs=64,
      num_steps=128, update_epochs=4, num_minibatches=8,
      optimizer=OptimizerConfig(name="adam", lr=5e-4, schedule="linear",
                                clip_norm=0.5),
      activation="relu", chunk_steps=131_072, checkpoint_every=1_048_576,
      workdir="runs/ppo_breakout_minatar")

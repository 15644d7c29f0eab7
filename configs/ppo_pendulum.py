"""PPO on Pendulum-v1 (continuous torque): long rollouts, many small updates, scaled rewards.

  python experiments/ppo.py --config configs/ppo_pendulum.py --seeds 4

16 environments x 256 steps per rollout, 10 epochs of 32 minibatches, Adam
1e-3 annealed, gamma 0.9 (the common Pendulum choice), no entropy bonus,
rewards x 0.1 for learning with an unclipped value loss; 1M environment
steps (25 chunks of 40,960).
"""

from dlcore.optim import OptimizerConfig
from dlcore.rl.ppo import PpoConfig


def get_config() -> PpoConfig:
  return PpoConfig(
      env="Pendulum-v1", total_steps=1_000_000, num_envs=16, num_steps=256,
      update_epochs=10, num_minibatches=32,
      optimizer=OptimizerConfig(name="adam", lr=1e-3, schedule="linear",
                                clip_norm=0.5),
      gamma=0.9, ent_coef=0.0, reward_scale=0.1, clip_value=False,
      chunk_steps=40_960, eval_episodes=100, workdir="runs/ppo_pendulum")

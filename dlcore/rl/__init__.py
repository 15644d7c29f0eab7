"""Reinforcement learning, compiled end to end on gymnax environments.

  dlcore.rl.config    ``RlConfig``: the options every RL run shares.
  dlcore.rl.program   ``Program`` and ``Runner``: a whole run as pure functions.
  dlcore.rl.envs      gymnax environments, validated for the agent that takes them.
  dlcore.rl.episodes  evaluating a policy over parallel episodes.
  dlcore.rl.replay    a fixed-capacity circular replay buffer as pure functions.
  dlcore.rl.seeds     the seeds' devices and their episode returns.
  dlcore.rl.train     the common driver of a program's seeds.
  dlcore.rl.dqn       DQN and Double DQN.
  dlcore.rl.ppo       PPO.
"""

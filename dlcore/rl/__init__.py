"""Reinforcement-learning building blocks: JAX-native environments and replay.

  dlcore.rl.envs     gymnax environments with discrete actions, validated by name.
  dlcore.rl.replay   a fixed-capacity circular replay buffer as pure functions.
"""

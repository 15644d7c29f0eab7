"""Actor-critic networks for policy gradients: a policy and a value per observation.

Usage::

  net = ActorCritic(action_dim=2)                       # CartPole: categorical
  net = ActorCritic(action_dim=1, continuous=True)      # Pendulum: Gaussian
  dist, value = net.apply({"params": params}, obs)      # obs [B, ...]
  value = net.apply({"params": params}, obs, method="value")  # [B], critic only

Observations are flattened to ``[B, D]`` float32. The actor and the critic
are MLPs (``hidden_sizes``, tanh or ReLU) with separate torsos, or one shared
torso with ``shared=True``. Initialisation is orthogonal as in PPO's
reference implementations (PureJaxRL, CleanRL): gain sqrt(2) for hidden
layers, 0.01 for the policy head (near-uniform first policy), 1 for the
value head, zero biases. The actor's output is a ``Categorical`` over the
logits, or a ``DiagonalGaussian`` whose mean is the head and whose
log-standard deviation is a state-independent parameter ``log_std [A]``
(initially 0). ``value`` is ``[B]`` float32.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.initializers import constant, orthogonal

from dlcore.rl.distributions import Categorical, DiagonalGaussian

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}


class ActorCritic(nn.Module):
  """Observations ``[B, ...]`` -> (policy distribution, value ``[B]``)."""
  action_dim: int
  continuous: bool = False
  hidden_sizes: Sequence[int] = (64, 64)
  activation: str = "tanh"
  shared: bool = False

  def setup(self):
    hidden = lambda prefix: [
        nn.Dense(width, kernel_init=orthogonal(math.sqrt(2)),
                 bias_init=constant(0.0), name=f"{prefix}_{i}")
        for i, width in enumerate(self.hidden_sizes)]
    self.actor_torso = hidden("torso" if self.shared else "actor")
    self.critic_torso = self.actor_torso if self.shared else hidden("critic")
    self.policy_head = nn.Dense(self.action_dim, kernel_init=orthogonal(0.01),
                                bias_init=constant(0.0))
    self.value_head = nn.Dense(1, kernel_init=orthogonal(1.0),
                               bias_init=constant(0.0))
    if self.continuous:
      self.log_std = self.param("log_std", nn.initializers.zeros,
                                (self.action_dim,))

  def _features(self, layers, obs: jax.Array) -> jax.Array:
    x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
    for layer in layers:
      x = ACTIVATIONS[self.activation](layer(x))
    return x

  def value(self, obs: jax.Array) -> jax.Array:
    """The critic alone: ``[B]``."""
    return self.value_head(self._features(self.critic_torso, obs))[:, 0]

  def __call__(self, obs: jax.Array):
    features = self._features(self.actor_torso, obs)
    out = self.policy_head(features)
    dist = (DiagonalGaussian(out, self.log_std) if self.continuous
            else Categorical(out))
    critic = (features if self.shared
              else self._features(self.critic_torso, obs))
    return dist, self.value_head(critic)[:, 0]

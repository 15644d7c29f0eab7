"""The PPO update on one minibatch: ``ppo_step(state, minibatch, key) -> (state, metrics)``.

Usage::

  step = jax.jit(functools.partial(ppo_step, clip_eps=0.2, vf_coef=0.5,
                                   ent_coef=0.01, clip_value=True))
  state, metrics = step(state, minibatch, key)

``minibatch`` holds ``obs [B, ...]``, ``action [B]`` (or ``[B, A]``), the
acting policy's ``log_prob [B]`` and ``value [B]``, the GAE ``advantage
[B]`` and the value ``target [B]`` (advantage + value). The advantages are
normalised over the minibatch (zero mean, unit standard deviation, +1e-8),
then the loss is ``policy_loss + vf_coef value_loss - ent_coef entropy``
(``dlcore.rl.ppo.losses``). Metrics: ``loss``, ``policy_loss``,
``value_loss``, ``entropy``, ``approx_kl`` (``mean((rho - 1) - log rho)``,
Schulman's low-variance estimator) and ``clip_fraction`` (the share of
ratios outside the clip range).

With ``axis_name`` set the minibatch is split over devices: the advantage
statistics, gradients and metrics are averaged with ``lax.pmean``, so
every device makes the update one device would make on the whole
minibatch. ``key`` is unused (the update is deterministic) and kept for the
common step contract.
"""

import jax
import jax.numpy as jnp
from flax.training import train_state
from jax import lax

from dlcore.objective import Metrics
from dlcore.rl.ppo.losses import clipped_surrogate, value_loss


def _mean(x: jax.Array, axis_name: str | None) -> jax.Array:
  mean = jnp.mean(x)
  return mean if axis_name is None else lax.pmean(mean, axis_name)


def ppo_step(state: train_state.TrainState, minibatch: dict[str, jax.Array],
             key: jax.Array, *, clip_eps: float = 0.2, vf_coef: float = 0.5,
             ent_coef: float = 0.01, clip_value: bool = True,
             axis_name: str | None = None
             ) -> tuple[train_state.TrainState, Metrics]:
  """One gradient step on PPO's loss (see the module docstring)."""
  del key  # Deterministic update.
  advantage = minibatch["advantage"]
  mean = _mean(advantage, axis_name)
  std = jnp.sqrt(_mean(jnp.square(advantage - mean), axis_name))
  advantage = (advantage - mean) / (std + 1e-8)

  def loss_fn(params):
    dist, value = state.apply_fn({"params": params}, minibatch["obs"])
    log_ratio = dist.log_prob(minibatch["action"]) - minibatch["log_prob"]
    ratio = jnp.exp(log_ratio)
    policy_loss = clipped_surrogate(ratio, advantage, clip_eps)
    critic_loss = value_loss(value, minibatch["value"], minibatch["target"],
                             clip_eps if clip_value else None)
    entropy = jnp.mean(dist.entropy())
    loss = policy_loss + vf_coef * critic_loss - ent_coef * entropy
    return loss, {"loss": loss, "policy_loss": policy_loss,
                  "value_loss": critic_loss, "entropy": entropy,
                  "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
                  "clip_fraction": jnp.mean(
                      (jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))}

  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    grads, metrics = lax.pmean((grads, metrics), axis_name)
  return state.apply_gradients(grads=grads), metrics

"""The DQN update: ``dqn_step(state, transitions, key) -> (state, metrics)``.

Usage::

  step = jax.jit(functools.partial(dqn_step, gamma=0.99, double=True,
                                   target_update_period=50))
  state, metrics = step(state, batch, key)  # metrics: loss, q_mean

``transitions`` holds ``obs [B, ...]``, ``action [B]`` (int), ``reward
[B]``, ``next_obs [B, ...]`` (the observation the action led to, also when
the episode was truncated by a time limit) and ``terminated [B]`` (true end
of the task). The TD target (``td_target``) is

  y = r + gamma * (1 - terminated) * Q_target(s', a*)
  a* = argmax_a Q_target(s', a)   (DQN)
  a* = argmax_a Q_online(s', a)   (Double DQN, van Hasselt et al., 2016)

so a terminated transition does not bootstrap and a truncated one does, from
its true final observation. The loss is the batch mean of the squared or
Huber (delta 1) TD error ``Q_online(s, a) - y``. After the Adam step (with
any clipping configured in ``state.tx``), every ``target_update_period``
updates the target moves to ``tau * online + (1 - tau) * target``: a hard
copy for ``tau = 1``, Polyak averaging below.

With ``axis_name`` set (under ``jax.shard_map`` / ``jax.pmap``), gradients
and metrics are averaged across devices with ``lax.pmean``, so every device
applies the same update and keeps identical parameters. ``key`` is unused
(the update is deterministic) and kept for the common step contract.
"""

import jax
import jax.numpy as jnp
import optax
from jax import lax

from dlcore.objective import Metrics
from dlcore.rl.dqn.state import DQNState

TD_LOSSES = {"mse": optax.squared_error,
          "huber": lambda td: optax.huber_loss(td, delta=1.0)}


def td_target(reward: jax.Array, terminated: jax.Array,
              next_q_target: jax.Array, gamma: float,
              next_q_online: jax.Array | None = None) -> jax.Array:
  """``y [B]`` from ``reward [B]``, ``terminated [B]`` and next-state values ``[B, A]``.

  Given ``next_q_online`` (Double DQN), the online network picks the action
  and the target network values it; otherwise the target network does both.
  """
  if next_q_online is None:
    next_value = jnp.max(next_q_target, axis=-1)
  else:
    best = jnp.argmax(next_q_online, axis=-1)
    next_value = jnp.take_along_axis(next_q_target, best[:, None], axis=-1)[:, 0]
  not_terminated = 1.0 - terminated.astype(next_value.dtype)
  return reward + gamma * not_terminated * next_value


def dqn_step(state: DQNState, transitions: dict[str, jax.Array],
             key: jax.Array, *, gamma: float = 0.99, double: bool = False,
             loss: str = "mse", target_update_period: int = 1,
             tau: float = 1.0, report_grad_norm: bool = False,
             axis_name: str | None = None) -> tuple[DQNState, Metrics]:
  """One gradient step on the TD loss, then the scheduled target update.

  Metrics: ``loss`` and ``q_mean``; with ``report_grad_norm`` also the
  global norm of the (device-averaged) gradient, ``grad_norm``. It is off by
  default because on small Q-networks its reductions cost ~15% of a step.
  """
  del key  # Deterministic update.
  apply = lambda params, obs: state.apply_fn({"params": params}, obs)
  next_obs = transitions["next_obs"]
  next_q_online = apply(state.params, next_obs) if double else None
  target = lax.stop_gradient(td_target(
      transitions["reward"].astype(jnp.float32), transitions["terminated"],
      apply(state.target_params, next_obs), gamma, next_q_online))

  def loss_fn(params):
    q = apply(params, transitions["obs"])
    q_taken = jnp.take_along_axis(
        q, transitions["action"][:, None].astype(jnp.int32), axis=-1)[:, 0]
    value = jnp.mean(TD_LOSSES[loss](q_taken - target))
    return value, {"loss": value, "q_mean": jnp.mean(q_taken)}

  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    grads, metrics = lax.pmean((grads, metrics), axis_name)
  if report_grad_norm:
    metrics["grad_norm"] = optax.global_norm(grads)
  state = state.apply_gradients(grads=grads)

  def updated_target():
    if tau == 1.0:  # A hard copy needs no arithmetic.
      return state.params
    return optax.incremental_update(state.params, state.target_params, tau)

  # A cond, not optax.periodic_update's select: off-schedule steps skip the
  # parameter-sized work (under vmap it becomes a select again).
  target_params = lax.cond(state.step % target_update_period == 0,
                           updated_target, lambda: state.target_params)
  return state.replace(target_params=target_params), metrics

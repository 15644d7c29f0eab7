"""The hand-written JAX + Flax + Optax train step dlcore is measured against.

Written plainly, the way the Flax examples write it (``examples/mnist`` for
models without BatchNorm, ``examples/imagenet`` for models with it): a
``TrainState`` with ``batch_stats``, a loss closure, ``jax.value_and_grad``
and ``apply_gradients``, jitted with the state donated. Nothing here comes
from dlcore except the Flax model definitions, which are plain linen
modules, so ``dlcore / baseline`` step time measures the framework's cost.

Usage::

  state = create_train_state(model, optax.adam(1e-3), images, key)
  step = jax.jit(train_step, donate_argnums=0)   # or train_step_batchnorm
  state, metrics = step(state, {"image": x, "label": y}, dropout_key)

``dqn_update`` is the same for a DQN update (CleanRL's ``dqn_jax.py``).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  batch_stats: Any


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       images: jax.Array, key: jax.Array) -> TrainState:
  params_key, dropout_key = jax.random.split(key)
  variables = model.init({"params": params_key, "dropout": dropout_key},
                         images[:1], train=False)
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           tx=tx, batch_stats=variables.get("batch_stats", {}))


def _loss_and_accuracy(logits, labels):
  one_hot = jax.nn.one_hot(labels, logits.shape[-1])
  loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return loss, accuracy


def train_step(state: TrainState, batch, key):
  """One Adam step for a model without BatchNorm."""
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, batch["image"], train=True,
                            rngs={"dropout": key})
    return _loss_and_accuracy(logits, batch["label"])

  (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads)
  return state, {"loss": loss, "accuracy": accuracy}


def train_step_batchnorm(state: TrainState, batch, key):
  """One Adam step for a model with BatchNorm (batch statistics updated)."""
  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, rngs={"dropout": key}, mutable=["batch_stats"])
    loss, accuracy = _loss_and_accuracy(logits, batch["label"])
    return loss, (accuracy, updates["batch_stats"])

  (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  return state, {"loss": loss, "accuracy": accuracy}


class DqnTrainState(train_state.TrainState):
  target_params: Any


def dqn_update(state: DqnTrainState, batch, key, gamma: float = 0.99):
  """One DQN update as CleanRL's ``dqn_jax.py`` writes it; hard target copy."""
  del key
  next_q = state.apply_fn({"params": state.target_params}, batch["next_obs"])
  not_done = 1.0 - batch["terminated"].astype(jnp.float32)
  target = batch["reward"] + gamma * not_done * jnp.max(next_q, axis=-1)

  def loss_fn(params):
    q = state.apply_fn({"params": params}, batch["obs"])
    q_taken = q[jnp.arange(q.shape[0]), batch["action"]]
    return jnp.mean((q_taken - target) ** 2), q_taken

  (loss, q_taken), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  state = state.apply_gradients(grads=grads)
  state = state.replace(target_params=state.params)
  return state, {"loss": loss, "q_mean": jnp.mean(q_taken)}

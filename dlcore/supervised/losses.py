"""Supervised losses, per example, as pure functions (Optax does the arithmetic)."""

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array,
                  label_smoothing: float = 0.0) -> jax.Array:
  """Softmax cross-entropy ``[B]`` of logits ``[B, K]`` against integer labels ``[B]``.

  With smoothing ``a`` the target is ``(1 - a) * one_hot + a / K``.
  """
  targets = optax.smooth_labels(
      jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean squared error per example ``[B]``: ``mean_j (p_j - t_j)^2``."""
  targets = targets.reshape(predictions.shape)
  return jnp.mean(
      optax.squared_error(predictions, targets).reshape(len(predictions), -1),
      axis=-1)

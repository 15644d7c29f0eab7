"""The VAE train step: one gradient step on the negative ELBO.

Usage::

  state = create_vae_state((8, 8, 1), key, tx=optax.adam(1e-3))
  step = jax.jit(vae_step)
  state, metrics = step(state, {"image": x}, key)

``batch["image"]`` ``[B, H, W, C]`` holds images in [0, 1]; ``key`` draws
the reparameterisation noise. The loss is the batch mean of ``-ELBO =
KL(q(z | x) || p(z)) - E_q[log p(x | z)]`` (one sample of ``z`` per
example). Metrics: ``loss``, ``elbo``, ``reconstruction`` (the mean
``log p(x | z)``) and ``kl``, all in nats per example. With ``axis_name``
set, each device takes its rows of the noise one device would draw for the
global batch, and gradients and metrics are averaged across devices with
``lax.pmean``: the step computes what one device does on the global batch.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from dlcore import parallel
from dlcore.metrics import Average
from dlcore.objective import Metrics
from dlcore.state import TrainState


def elbo_terms(state: TrainState, params, images: jax.Array, key: jax.Array,
               axis_name: str | None = None) -> Metrics:
  """Per-example ``elbo``, ``reconstruction`` and ``kl``, each ``[B]``.

  With ``axis_name``, the noise is this device's rows of the draw for the
  global batch.
  """
  draw_noise = functools.partial(parallel.shard_of_global_draw,
                                 jax.random.normal, axis_name=axis_name)
  log_p, kl = state.apply_fn({"params": params}, images, key, draw_noise)
  return {"elbo": log_p - kl, "reconstruction": log_p, "kl": kl}


def vae_eval_step(state: TrainState, batch: dict[str, jax.Array],
                  key: jax.Array, *,
                  axis_name: str | None = None) -> dict[str, Average]:
  """Masked averages of ``elbo``, ``reconstruction`` and ``kl`` (one noise draw each)."""
  terms = elbo_terms(state, state.params, batch["image"], key, axis_name)
  sums = {k: Average.of(v, batch.get("mask")) for k, v in terms.items()}
  return sums if axis_name is None else lax.psum(sums, axis_name)


def vae_step(state: TrainState, batch: dict[str, jax.Array], key: jax.Array, *,
             axis_name: str | None = None) -> tuple[TrainState, Metrics]:
  """One Adam step on the mean negative ELBO; see the module docstring."""
  def loss_fn(params):
    terms = jax.tree.map(jnp.mean, elbo_terms(state, params, batch["image"],
                                              key, axis_name))
    return -terms["elbo"], terms

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  metrics = {"loss": loss, **metrics}
  if axis_name is not None:
    grads, metrics = lax.pmean((grads, metrics), axis_name)
  return state.apply_gradients(grads=grads), metrics

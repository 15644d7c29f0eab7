"""The VAE train step: one gradient step on the negative ELBO.

Usage::

  state = create_vae_state((8, 8, 1), key)
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
from typing import Sequence

import jax
import jax.numpy as jnp
import optax
from jax import lax

from dlcore import parallel
from dlcore.models.vae import VAE
from dlcore.state import TrainState

Metrics = dict[str, jax.Array]


def create_vae_state(image_shape: Sequence[int], key: jax.Array, *,
                     batch_size: int = 2, latent_dim: int = 16,
                     likelihood: str = "bernoulli",
                     lr: float = 1e-3) -> TrainState:
  """A fresh ``TrainState`` of ``VAE`` with Adam; ``batch_size`` sizes the init input."""
  model = VAE(tuple(image_shape), latent_dim, likelihood)
  params_key, noise_key = jax.random.split(key)
  params = model.init(params_key, jnp.zeros((batch_size, *image_shape)),
                      noise_key)["params"]
  return TrainState.create(apply_fn=model.apply, params=params,
                           tx=optax.adam(lr), batch_stats={})


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
                  key: jax.Array) -> Metrics:
  """Sums over unmasked examples of ``elbo``, ``reconstruction``, ``kl``; ``count``."""
  mask = batch.get("mask", jnp.ones(batch["image"].shape[:1], jnp.float32))
  terms = elbo_terms(state, state.params, batch["image"], key)
  return {"count": jnp.sum(mask),
          **{k: jnp.sum(v * mask) for k, v in terms.items()}}


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

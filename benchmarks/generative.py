"""GAN and VAE workloads, registered when ``dlcore.adversarial`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads gan_dcgan,gan_wgan_gp,gan_mlp,vae``.

The GAN steps time one full iteration (``n_critic`` discriminator updates,
then one generator update: 1 for the non-saturating loss, 5 for WGAN-GP),
on real images in [-1, 1]; the VAE step one Adam step on the negative ELBO.
Items per step are the real examples consumed. Each has a hand-written
baseline (``gan_step`` / ``wgan_gp_step`` / ``vae_step``: the same
Flax modules, optimizers, init key and random draws as dlcore's
``create_gan_state`` / ``gan_step`` and ``create_vae_state`` /
``vae_step``); the MLP GAN also a PyTorch eager side
(``torch_models.make_gan_step``).
"""

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax import lax

from benchmarks.workloads import TrainState
from benchmarks.workloads import Workload, register, torch_available
from dlcore import adversarial
from dlcore import vae as dlcore_vae
from dlcore.models.gan import create_gan_models
from dlcore.models.vae import VAE

MNIST = (28, 28, 1)


def _images(low: float):
  def make(rng: np.random.Generator, batch_size: int):
    images = rng.random((batch_size,) + MNIST, dtype=np.float32)
    return {"image": low + (1.0 - low) * images,
            "label": rng.integers(0, 10, batch_size).astype(np.int32)}
  return make


def _gan(arch: str, loss: str):
  def build(batch, dtype, key):
    del dtype  # The GAN models compute in float32.
    state = adversarial.create_gan_state(arch, MNIST, key)
    step = jax.jit(functools.partial(adversarial.gan_step, loss=loss),
                   donate_argnums=0)
    return step, state
  return build


def _gan_baseline(arch: str, loss: str):
  def build(batch, dtype, key):
    del batch, dtype
    states = create_gan_states(*create_gan_models(arch, MNIST), MNIST,
                                        key)
    step = wgan_gp_step if loss == "wgan-gp" else gan_step
    return jax.jit(step, donate_argnums=0), states
  return build


def _gan_torch(batch, dtype):
  del dtype  # As on the JAX sides, float32.
  from benchmarks import torch_models  # pylint: disable=import-outside-toplevel
  return torch_models.make_gan_step(batch, torch_models.default_device())


def _vae(batch, dtype, key):
  del dtype
  return (jax.jit(dlcore_vae.vae_step, donate_argnums=0),
          dlcore_vae.create_vae_state(MNIST, key))


def _vae_baseline(batch, dtype, key):
  del batch, dtype
  state = create_vae_state(VAE(MNIST), MNIST, key)
  return jax.jit(vae_step, donate_argnums=0), state


# The DCGAN steps take seconds each on a 2-core CPU: not part of --quick.
for name, arch, loss, text in (
    ("gan_dcgan", "dcgan", "nonsaturating", "DCGAN, non-saturating loss"),
    ("gan_wgan_gp", "dcgan", "wgan-gp", "DCGAN, WGAN-GP (5 critic steps)"),
    ("gan_mlp", "mlp", "nonsaturating", "MLP GAN, non-saturating loss")):
  register(Workload(name=name, description=f"{text}, MNIST shape",
                    make_batch=_images(-1.0), dlcore=_gan(arch, loss),
                    baseline=_gan_baseline(arch, loss),
                    torch=_gan_torch if arch == "mlp" and torch_available()
                    else None,
                    batch_size=64, quick_batch_size=32,
                    in_quick=arch == "mlp",
                    # XLA counts the scanned critic updates once, not 5 times.
                    flops_per_step=(lambda batch_size: None)
                    if loss == "wgan-gp" else None))
register(Workload(name="vae", description="VAE (Bernoulli), MNIST shape",
                  make_batch=_images(0.0), dlcore=_vae,
                  baseline=_vae_baseline, batch_size=128,
                  quick_batch_size=128))


# The hand-written GAN and VAE steps: the same updates written plainly,
# splitting their keys as dlcore does, so that from one key both sides
# compute the same numbers (tests/test_benchmarks.py).


class GanStates(NamedTuple):
  generator: TrainState
  discriminator: TrainState


def create_gan_states(generator: nn.Module, discriminator: nn.Module,
                      image_shape, key: jax.Array, *, latent_dim: int = 64,
                      lr: float = 2e-4, b1: float = 0.5,
                      b2: float = 0.999) -> GanStates:
  """Both networks with Adam(``lr``, ``b1``, ``b2``), as in DCGAN.

  ``key`` splits into the generator's and the discriminator's init keys.
  """
  g_key, d_key = jax.random.split(key)
  g_vars = generator.init(g_key, jnp.zeros((1, latent_dim)), train=False)
  d_vars = discriminator.init(d_key, jnp.zeros((1, *image_shape)),
                              train=False)
  tx = optax.adam(lr, b1=b1, b2=b2)
  return GanStates(
      TrainState.create(apply_fn=generator.apply, params=g_vars["params"],
                        tx=tx, batch_stats=g_vars.get("batch_stats", {})),
      TrainState.create(apply_fn=discriminator.apply, params=d_vars["params"],
                        tx=tx, batch_stats={}))


def _generate(g: TrainState, params, key, batch_size: int, latent_dim: int):
  """``(images [B, H, W, C], new batch_stats)`` from ``z ~ N(0, I)`` drawn from ``key``."""
  z = jax.random.normal(key, (batch_size, latent_dim))
  images, updates = g.apply_fn({"params": params, "batch_stats": g.batch_stats},
                               z, train=True, mutable=["batch_stats"])
  return images, updates["batch_stats"]


def _generator_update(g: TrainState, d: TrainState, key, batch_size: int,
                      latent_dim: int, loss_of_logits):
  """One Adam step of G on ``loss_of_logits(D(G(z)))``; BatchNorm statistics kept."""
  def loss_fn(params):
    fake, batch_stats = _generate(g, params, key, batch_size, latent_dim)
    logits = d.apply_fn({"params": d.params}, fake, train=True)
    return loss_of_logits(logits), batch_stats

  (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      g.params)
  return g.apply_gradients(grads=grads, batch_stats=batch_stats), loss


def gan_step(states: GanStates, batch, key, latent_dim: int = 64):
  """One D step, then one G step, with the non-saturating loss.

  D minimises ``mean softplus(-D(x)) + mean softplus(D(G(z)))`` (logits),
  G minimises ``mean softplus(-D(G(z')))`` against the updated D, with fresh
  noise ``z'``. ``key`` splits into D's and G's noise keys, in that order.
  """
  g, d = states
  real = batch["image"]
  batch_size = real.shape[0]
  d_key, g_key = jax.random.split(key)
  fake, _ = _generate(g, g.params, d_key, batch_size, latent_dim)

  def d_loss_fn(params):
    real_logits = d.apply_fn({"params": params}, real, train=True)
    fake_logits = d.apply_fn({"params": params}, fake, train=True)
    loss = (jnp.mean(jax.nn.softplus(-real_logits))
            + jnp.mean(jax.nn.softplus(fake_logits)))
    return loss, (real_logits, fake_logits)

  (d_loss, (real_logits, fake_logits)), grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(d.params)
  d = d.apply_gradients(grads=grads)
  g, g_loss = _generator_update(
      g, d, g_key, batch_size, latent_dim,
      lambda logits: jnp.mean(jax.nn.softplus(-logits)))
  return GanStates(g, d), {
      "d_loss": d_loss, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
      "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), "g_loss": g_loss}


def wgan_gp_step(states: GanStates, batch, key, latent_dim: int = 64,
                 n_critic: int = 5, gp_weight: float = 10.0):
  """``n_critic`` WGAN-GP critic steps (a ``lax.scan``), then one G step.

  The critic minimises ``mean D(G(z)) - mean D(x) + gp_weight * mean_i
  (||grad D(x_hat_i)||_2 - 1)^2`` with ``x_hat = e x + (1 - e) G(z)``, ``e ~
  U[0, 1]`` per example (Gulrajani et al., 2017); G minimises ``-mean
  D(G(z'))``. ``key`` splits into ``2 n_critic + 1`` keys: the critic
  steps' noise, their ``e``, then G's noise. Metrics are means over the
  critic steps, and G's loss.
  """
  g, d = states
  real = batch["image"]
  batch_size = real.shape[0]
  keys = jax.random.split(key, 2 * n_critic + 1)

  def critic_step(d, step_keys):
    noise_key, eps_key = step_keys
    fake, _ = _generate(g, g.params, noise_key, batch_size, latent_dim)
    eps = jax.random.uniform(eps_key, (batch_size, 1, 1, 1))
    x_hat = eps * real + (1.0 - eps) * fake

    def loss_fn(params):
      critic = lambda x: d.apply_fn({"params": params}, x, train=True)
      real_out, fake_out = critic(real), critic(fake)
      grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
      norms = jnp.sqrt(jnp.sum(grads.reshape((batch_size, -1)) ** 2, -1)
                       + 1e-12)
      penalty = jnp.mean((norms - 1.0) ** 2)
      loss = jnp.mean(fake_out) - jnp.mean(real_out) + gp_weight * penalty
      return loss, {"d_loss": loss, "d_real": jnp.mean(real_out),
                    "d_fake": jnp.mean(fake_out), "gradient_penalty": penalty}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(d.params)
    return d.apply_gradients(grads=grads), metrics

  d, metrics = lax.scan(critic_step, d,
                        (keys[:n_critic], keys[n_critic:2 * n_critic]))
  g, g_loss = _generator_update(g, d, keys[-1], batch_size, latent_dim,
                                lambda logits: -jnp.mean(logits))
  return GanStates(g, d), {**jax.tree.map(jnp.mean, metrics), "g_loss": g_loss}


def create_vae_state(model: nn.Module, image_shape, key: jax.Array,
                     lr: float = 1e-3) -> train_state.TrainState:
  """``model`` (``model(x, key) -> (log p(x | z), KL)``) with Adam(``lr``).

  ``key`` splits into the parameters' and the init pass's noise key.
  """
  params_key, noise_key = jax.random.split(key)
  params = model.init(params_key, jnp.zeros((1, *image_shape)),
                      noise_key)["params"]
  return train_state.TrainState.create(apply_fn=model.apply, params=params,
                                       tx=optax.adam(lr))


def vae_step(state: train_state.TrainState, batch, key):
  """One Adam step on ``mean(KL - log p(x | z))``, the negative ELBO; ``key`` draws z."""
  def loss_fn(params):
    log_p, kl = state.apply_fn({"params": params}, batch["image"], key)
    return jnp.mean(kl - log_p), (log_p, kl)

  (loss, (log_p, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  return state.apply_gradients(grads=grads), {
      "loss": loss, "reconstruction": jnp.mean(log_p), "kl": jnp.mean(kl)}

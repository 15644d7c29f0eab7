"""GAN and VAE workloads, registered when ``dlcore.adversarial`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads gan_dcgan,gan_wgan_gp,gan_mlp,vae``.

The GAN steps time one full iteration (``n_critic`` discriminator updates,
then one generator update: 1 for the non-saturating loss, 5 for WGAN-GP),
on real images in [-1, 1]; the VAE step one Adam step on the negative ELBO.
Items per step are the real examples consumed. Each has a hand-written
baseline (``baseline.gan_step`` / ``wgan_gp_step`` / ``vae_step``: the same
Flax modules, optimizers, init key and random draws as dlcore's
``create_gan_state`` / ``gan_step`` and ``create_vae_state`` /
``vae_step``); the MLP GAN also a PyTorch eager side
(``torch_models.make_gan_step``).
"""

import functools

import jax
import numpy as np

from benchmarks import baseline
from benchmarks.workloads import Workload, register, torch_available
from dlcore.adversarial import create_gan_state, gan_step
from dlcore.models.gan import create_gan_models
from dlcore.models.vae import VAE
from dlcore.vae import create_vae_state, vae_step

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
    state = create_gan_state(arch, MNIST, key)
    step = jax.jit(functools.partial(gan_step, loss=loss), donate_argnums=0)
    return step, state
  return build


def _gan_baseline(arch: str, loss: str):
  def build(batch, dtype, key):
    del batch, dtype
    states = baseline.create_gan_states(*create_gan_models(arch, MNIST), MNIST,
                                        key)
    step = baseline.wgan_gp_step if loss == "wgan-gp" else baseline.gan_step
    return jax.jit(step, donate_argnums=0), states
  return build


def _gan_torch(batch, dtype):
  del dtype  # As on the JAX sides, float32.
  from benchmarks import torch_models  # pylint: disable=import-outside-toplevel
  return torch_models.make_gan_step(batch, torch_models.default_device())


def _vae(batch, dtype, key):
  del dtype
  return jax.jit(vae_step, donate_argnums=0), create_vae_state(MNIST, key)


def _vae_baseline(batch, dtype, key):
  del batch, dtype
  state = baseline.create_vae_state(VAE(MNIST), MNIST, key)
  return jax.jit(baseline.vae_step, donate_argnums=0), state


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

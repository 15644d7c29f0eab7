"""The CycleGAN workload, registered when ``dlcore.cyclegan`` exists.

Usage: imported by ``benchmarks.workloads``; then ``python -m benchmarks
--workloads cyclegan``.

One step updates both generators, then both discriminators through their
image pools (``cyclegan_step``, least-squares loss, cycle weight 10,
identity 0.5), at the default run's sizes (``CycleGanConfig``) on
32x32x3 images in [-1, 1]; items per step are the images of one domain.
The hand-written baseline (``cyclegan_step``) starts from the
same parameters, uses the same Adam (2e-4, beta1 0.5) for each network and
splits the step key as dlcore does, so both compute the same numbers.
"""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax import lax

from benchmarks.workloads import Workload, register
from dlcore import cyclegan as dlcore_cyclegan
from dlcore.cyclegan import CycleGanConfig, create_cyclegan_state

SHAPE = (32, 32, 3)
SPEC = CycleGanConfig().spec
POOL_SIZE = 50


def _images(rng: np.random.Generator, batch_size: int):
  draw = lambda: rng.random((batch_size,) + SHAPE, dtype=np.float32) * 2 - 1
  return {"image_a": draw(), "image_b": draw()}


def _dlcore(batch, dtype, key):
  del batch
  state = create_cyclegan_state(SPEC, SHAPE, key, pool_size=POOL_SIZE,
                                dtype=np.dtype(dtype))
  return jax.jit(dlcore_cyclegan.cyclegan_step, donate_argnums=0), state


def baseline_states(state, dtype: str = "float32"):
  """``CycleGanStates`` from a dlcore state's initial parameters."""
  return create_cyclegan_states(
      SPEC.generator(SHAPE[-1], np.dtype(dtype)),
      SPEC.discriminator(np.dtype(dtype)),
      (state.generator_ab.params, state.generator_ba.params,
       state.discriminator_a.params, state.discriminator_b.params), SHAPE,
      pool_size=state.pool_a.size)


def _baseline(batch, dtype, key):
  _, state = _dlcore(batch, dtype, key)
  return jax.jit(cyclegan_step, donate_argnums=0), baseline_states(
      state, dtype)


register(Workload(name="cyclegan", description="CycleGAN (2 ResNet generators,"
                  " 2 PatchGANs, image pools), 32x32x3", make_batch=_images,
                  dlcore=_dlcore, baseline=_baseline, batch_size=4,
                  quick_batch_size=4, in_quick=False))


# The hand-written CycleGAN step, its image pool a ``fori_loop``, its keys
# split as dlcore's (tests/test_benchmarks.py).


class CycleGanStates(NamedTuple):
  """G (A -> B), F (B -> A), D_A, D_B, and each domain's pool of fakes."""
  g: train_state.TrainState
  f: train_state.TrainState
  d_a: train_state.TrainState
  d_b: train_state.TrainState
  pool_a: jax.Array  # [size, H, W, C]: F's fakes.
  count_a: jax.Array
  pool_b: jax.Array  # G's fakes.
  count_b: jax.Array


def create_cyclegan_states(generator: nn.Module, discriminator: nn.Module,
                           params, image_shape, pool_size: int = 50,
                           lr: float = 2e-4, b1: float = 0.5) -> CycleGanStates:
  """The four networks from ``params`` (G, F, D_A, D_B), each with its own Adam(``lr``, ``b1``)."""
  make = lambda model, p: train_state.TrainState.create(
      apply_fn=model.apply, params=p, tx=optax.adam(lr, b1=b1))
  g, f, d_a, d_b = params
  empty = lambda: jnp.zeros((pool_size, *image_shape))  # Own buffers: donated.
  zero = lambda: jnp.zeros((), jnp.int32)
  return CycleGanStates(make(generator, g), make(generator, f),
                        make(discriminator, d_a), make(discriminator, d_b),
                        empty(), zero(), empty(), zero())


def _image_pool(pool, count, fakes, key):
  """junyanz's ``ImagePool.query`` over the batch in order: ``(pool, count, served)``.

  ``key`` splits into the swap draws ``u`` (swap when ``u > 0.5`` once the
  pool is full) and the indices, in that order.
  """
  size, batch_size = pool.shape[0], fakes.shape[0]
  u_key, index_key = jax.random.split(key)
  u = jax.random.uniform(u_key, (batch_size,))
  index = jax.random.randint(index_key, (batch_size,), 0, size)

  def body(j, carry):
    pool, count, served = carry
    if_full = count >= size
    slot = jnp.where(if_full, index[j], count)
    old = pool[slot]
    swap = if_full & (u[j] > 0.5)
    pool = pool.at[slot].set(jnp.where(if_full & ~swap, old, fakes[j]))
    served = served.at[j].set(jnp.where(swap, old, fakes[j]))
    return pool, count + (~if_full).astype(jnp.int32), served

  return lax.fori_loop(0, batch_size, body, (pool, count, fakes))


def cyclegan_step(states: CycleGanStates, batch, key, cycle_weight=10.0,
                  identity_weight=0.5):
  """CycleGAN's ``optimize_parameters`` with the least-squares loss.

  G and F minimise ``mse(D_B(G(a)), 1) + mse(D_A(F(b)), 1) + lambda
  (|F(G(a)) - a| + |G(F(b)) - b|) + identity lambda (|G(b) - b| + |F(a) -
  a|)``; then D_B and D_A each minimise ``0.5 (mse(D(real), 1) + mse(D(pooled
  fake), 0))``, their fakes drawn from the pools. ``key`` splits into
  pool A's and pool B's keys, in that order.
  """
  s = states
  a, b = batch["image_a"], batch["image_b"]
  key_a, key_b = jax.random.split(key)
  mse = lambda x, target: jnp.mean((x - target) ** 2)
  mae = lambda x, y: jnp.mean(jnp.abs(x - y))
  run = lambda state, params, x: state.apply_fn({"params": params}, x)

  def g_loss_fn(g_params, f_params):
    fake_b, fake_a = run(s.g, g_params, a), run(s.f, f_params, b)
    cycle_a = mae(run(s.f, f_params, fake_b), a)
    cycle_b = mae(run(s.g, g_params, fake_a), b)
    gan_ab = mse(run(s.d_b, s.d_b.params, fake_b), 1.0)
    gan_ba = mse(run(s.d_a, s.d_a.params, fake_a), 1.0)
    identity_a = mae(run(s.f, f_params, a), a)
    identity_b = mae(run(s.g, g_params, b), b)
    loss = (gan_ab + gan_ba + cycle_weight * (cycle_a + cycle_b)
            + identity_weight * cycle_weight * (identity_a + identity_b))
    return loss, ({"g_loss": loss, "g_gan_ab": gan_ab, "g_gan_ba": gan_ba,
                   "cycle_a": cycle_a, "cycle_b": cycle_b,
                   "identity_a": identity_a, "identity_b": identity_b},
                  fake_a, fake_b)

  (g_grads, f_grads), (metrics, fake_a, fake_b) = jax.grad(
      g_loss_fn, argnums=(0, 1), has_aux=True)(s.g.params, s.f.params)
  g, f = s.g.apply_gradients(grads=g_grads), s.f.apply_gradients(grads=f_grads)

  def d_update(d, real, fake):
    def loss_fn(params):
      return 0.5 * (mse(run(d, params, real), 1.0)
                    + mse(run(d, params, fake), 0.0))
    loss, grads = jax.value_and_grad(loss_fn)(d.params)
    return d.apply_gradients(grads=grads), loss

  pool_b, count_b, served_b = _image_pool(s.pool_b, s.count_b, fake_b, key_b)
  d_b, metrics["d_b_loss"] = d_update(s.d_b, b, served_b)
  pool_a, count_a, served_a = _image_pool(s.pool_a, s.count_a, fake_a, key_a)
  d_a, metrics["d_a_loss"] = d_update(s.d_a, a, served_a)
  return CycleGanStates(g, f, d_a, d_b, pool_a, count_a, pool_b,
                        count_b), metrics

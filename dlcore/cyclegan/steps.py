"""The CycleGAN train step: one update of both generators, then one of each discriminator.

Usage::

  step = jax.jit(functools.partial(cyclegan_step, loss="least-squares"))
  state, metrics = step(state, {"image_a": a, "image_b": b}, key)

``batch["image_a"]`` and ``batch["image_b"]`` ``[B, H, W, C]`` are unpaired
real images of the two domains in [-1, 1]. As in ``optimize_parameters``
of junyanz/pytorch-CycleGAN-and-pix2pix's ``cycle_gan_model.py``:

1. ``generators_update``: G (A -> B) and F (B -> A) minimise, against the
   current discriminators,
   ``L_G = gan(D_B(G(a))) + gan(D_A(F(b)))
         + lambda (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)
         + identity * lambda (|G(b) - b|_1 + |F(a) - a|_1)``
   (``|.|_1`` the mean absolute difference, ``lambda = cycle_weight``,
   ``identity = identity_weight``, 0 switches the identity terms off);
   each generator's optimizer takes its part of the one gradient.
2. ``discriminator_update`` of D_B, then of D_A: the fakes ``G(a)`` and
   ``F(b)`` of step 1 (made before the generators' update) go through the
   image pools ``pool_b`` and ``pool_a`` (``pool.query_pool``, with the
   step key's ``pool_keys``), and each discriminator minimises half its
   GAN loss, ``0.5 * gan_D(D(real), D(pooled fake))``.

``gan``/``gan_D`` are a ``dlcore.adversarial.losses`` pair (least squares
by default) of the PatchGAN's logits, averaged over the patches. Every
update touches only its own network(s) and pool.

With ``axis_name`` set (under ``jax.shard_map`` / ``jax.pmap``) gradients
and metrics are averaged with ``lax.pmean``. The pools are replicated, not
per device: each device gathers the global batch's fakes
(``lax.all_gather``), queries its copy of the pool with the step's key on
all of them (identical on every device) and keeps its own rows of what the
pool serves. ``n`` devices therefore compute what one device computes on
the global batch, pools included; instance normalisation needs no
synchronisation (its statistics are per image).
"""

import jax
from jax.sharding import PartitionSpec
import jax.numpy as jnp
from jax import lax

from dlcore.cyclegan.pool import ImagePool, query_pool
from dlcore.cyclegan.state import CycleGanState, apply
from dlcore.adversarial.losses import GanLoss
from dlcore.adversarial.steps import loss_spec
from dlcore.objective import Metrics
from dlcore.state import TrainState


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """The mean absolute difference ``mean |x - y|`` (PyTorch's ``L1Loss``)."""
  return jnp.mean(jnp.abs(x.astype(jnp.float32) - y.astype(jnp.float32)))


def pool_keys(key: jax.Array) -> dict[str, jax.Array]:
  """The step key's two distinct draws: ``pool_a`` (F's fakes) and ``pool_b`` (G's)."""
  key_a, key_b = jax.random.split(key)
  return {"pool_a": key_a, "pool_b": key_b}


def generator_losses(state: CycleGanState, g_params, f_params,
                     real_a: jax.Array, real_b: jax.Array, *, spec: GanLoss,
                     cycle_weight: float, identity_weight: float):
  """``(L_G, (metrics, fake_a, fake_b))`` of the module docstring's step 1."""
  g, f = state.generator_ab, state.generator_ba
  fake_b, fake_a = apply(g, real_a, g_params), apply(f, real_b, f_params)
  cycle_a = l1(apply(f, fake_b, f_params), real_a)
  cycle_b = l1(apply(g, fake_a, g_params), real_b)
  gan_ab = spec.generator(apply(state.discriminator_b, fake_b))
  gan_ba = spec.generator(apply(state.discriminator_a, fake_a))
  total = gan_ab + gan_ba + cycle_weight * (cycle_a + cycle_b)
  metrics = {"g_gan_ab": gan_ab, "g_gan_ba": gan_ba, "cycle_a": cycle_a,
             "cycle_b": cycle_b}
  if identity_weight > 0:
    identity_b = l1(apply(g, real_b, g_params), real_b)
    identity_a = l1(apply(f, real_a, f_params), real_a)
    total += identity_weight * cycle_weight * (identity_a + identity_b)
    metrics.update(identity_a=identity_a, identity_b=identity_b)
  return total, ({"g_loss": total, **metrics}, fake_a, fake_b)


def generators_update(state: CycleGanState, real_a: jax.Array,
                      real_b: jax.Array, *, spec: GanLoss,
                      cycle_weight: float = 10.0, identity_weight: float = 0.5,
                      axis_name: str | None = None):
  """``(state, metrics, fake_a, fake_b)``: one step of G and F; the discriminators untouched.

  ``fake_a = F(b)`` and ``fake_b = G(a)`` are made by the generators
  before this update (as the discriminators then see them).
  """
  g, f = state.generator_ab, state.generator_ba
  grads, (metrics, fake_a, fake_b) = jax.grad(
      lambda params: generator_losses(
          state, *params, real_a, real_b, spec=spec, cycle_weight=cycle_weight,
          identity_weight=identity_weight), has_aux=True)((g.params, f.params))
  if axis_name is not None:
    grads, metrics = lax.pmean((grads, metrics), axis_name)
  state = state.replace(generator_ab=g.apply_gradients(grads=grads[0]),
                        generator_ba=f.apply_gradients(grads=grads[1]))
  return state, metrics, lax.stop_gradient(fake_a), lax.stop_gradient(fake_b)


def _replicated(images: jax.Array) -> jax.Array:
  """``images`` copied to every device, under ``jit`` on a mesh (``jax.set_mesh``).

  Without this constraint XLA's SPMD partitioner (jaxlib 0.10.2) gave the
  discriminators other images than one device does once their kernels
  were split (FSDP over 4 of 8 devices; the 8-device proof of
  ``tests/multidevice`` catches it). Without a mesh it changes nothing.
  """
  if jax.sharding.get_abstract_mesh().empty:
    return images
  return lax.with_sharding_constraint(images, PartitionSpec())


def pooled(pool: ImagePool, fakes: jax.Array, key: jax.Array,
           axis_name: str | None) -> tuple[ImagePool, jax.Array]:
  """``(new pool, this device's served images)`` for this device's ``fakes`` ``[b, ...]``.

  With ``axis_name`` the pool sees the global batch (gathered in device
  order) and each device keeps its rows of what it serves.
  """
  if axis_name is None:
    pool, served, _ = query_pool(pool, fakes, key)
    return pool, _replicated(served)
  everyone = lax.all_gather(fakes, axis_name, tiled=True)
  pool, served, _ = query_pool(pool, everyone, key)
  rows = fakes.shape[0]
  return pool, lax.dynamic_slice_in_dim(
      served, lax.axis_index(axis_name) * rows, rows)


def discriminator_update(discriminator: TrainState, real: jax.Array,
                         fake: jax.Array, *, spec: GanLoss,
                         axis_name: str | None = None
                         ) -> tuple[TrainState, jax.Array]:
  """One step of ``discriminator`` on ``0.5 * gan_D(D(real), D(fake))``; (new state, loss)."""
  def loss_fn(params):
    return 0.5 * spec.discriminator(apply(discriminator, real, params),
                                    apply(discriminator, fake, params))

  loss, grads = jax.value_and_grad(loss_fn)(discriminator.params)
  if axis_name is not None:
    grads, loss = lax.pmean((grads, loss), axis_name)
  return discriminator.apply_gradients(grads=grads), loss


def cyclegan_step(state: CycleGanState, batch: dict[str, jax.Array],
                  key: jax.Array, *, loss: str = "least-squares",
                  cycle_weight: float = 10.0, identity_weight: float = 0.5,
                  axis_name: str | None = None
                  ) -> tuple[CycleGanState, Metrics]:
  """One CycleGAN iteration; see the module docstring. Bind options with ``partial``.

  Metrics: ``g_loss`` (``L_G``), its parts ``g_gan_ab``, ``g_gan_ba``,
  ``cycle_a``, ``cycle_b`` (and ``identity_a``, ``identity_b`` when on),
  and the halved discriminator losses ``d_a_loss``, ``d_b_loss``.
  """
  spec = loss_spec(loss)
  keys = pool_keys(key)
  real_a, real_b = batch["image_a"], batch["image_b"]
  state, metrics, fake_a, fake_b = generators_update(
      state, real_a, real_b, spec=spec, cycle_weight=cycle_weight,
      identity_weight=identity_weight, axis_name=axis_name)
  pool_b, served_b = pooled(state.pool_b, fake_b, keys["pool_b"], axis_name)
  d_b, metrics["d_b_loss"] = discriminator_update(
      state.discriminator_b, real_b, served_b, spec=spec, axis_name=axis_name)
  pool_a, served_a = pooled(state.pool_a, fake_a, keys["pool_a"], axis_name)
  d_a, metrics["d_a_loss"] = discriminator_update(
      state.discriminator_a, real_a, served_a, spec=spec, axis_name=axis_name)
  return state.replace(discriminator_a=d_a, discriminator_b=d_b, pool_a=pool_a,
                       pool_b=pool_b, step=state.step + 1), metrics

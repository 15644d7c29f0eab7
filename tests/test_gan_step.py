"""gan_step: key hygiene, which network each update touches, device averaging."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlcore.adversarial import create_gan_state, gan_step, sample, step_keys
from dlcore.adversarial.losses import LOSSES
from dlcore.adversarial.steps import discriminator_update, generator_update
from dlcore.errors import ConfigError
from dlcore.models.gan import DCGAN_SIZES, create_gan_models

SHAPE = (8, 8, 1)


def _batch(size=8, key=1):
  images = jax.random.uniform(jax.random.PRNGKey(key), (size, *SHAPE)) * 2 - 1
  return {"image": images, "label": jnp.arange(size) % 10}


def _key_bytes(keys) -> list[bytes]:
  data = np.asarray(jax.random.key_data(keys)).reshape(-1, 2)
  return [row.tobytes() for row in data]


def _equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(np.array_equal(x, y)), a, b)))


@pytest.mark.parametrize("n_critic,with_penalty", [(1, False), (5, True)])
def test_step_keys_are_pairwise_distinct(n_critic, with_penalty):
  named = step_keys(jax.random.PRNGKey(0), n_critic, with_penalty)
  assert named["critic_noise"].shape[0] == n_critic
  assert ("critic_interpolation" in named) == with_penalty
  drawn = [k for step in range(3)  # The loop's per-step keys, as train_loop makes them.
           for keys in step_keys(jax.random.fold_in(jax.random.PRNGKey(0), step),
                                 n_critic, with_penalty).values()
           for k in _key_bytes(keys)]
  assert len(drawn) == 3 * (n_critic * (2 if with_penalty else 1) + 1)
  assert len(set(drawn)) == len(drawn)


def test_every_draw_inside_gan_step_uses_its_own_key(monkeypatch):
  """Records, at run time, the key of every random draw the compiled step makes."""
  state = create_gan_state("mlp", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  batch, key = _batch(), jax.random.PRNGKey(7)
  used = []
  for name in ("normal", "uniform"):
    original = getattr(jax.random, name)

    def record(key, *args, _original=original, **kwargs):
      jax.debug.callback(lambda data: used.extend(_key_bytes(data)),
                         jax.random.key_data(key))
      return _original(key, *args, **kwargs)
    monkeypatch.setattr(jax.random, name, record)
  step = jax.jit(functools.partial(gan_step, loss="wgan-gp", n_critic=2))
  jax.block_until_ready(step(state, batch, key))
  jax.effects_barrier()
  monkeypatch.undo()
  # 2 critic noises + 2 interpolations + 1 generator noise, all distinct,
  # and exactly the keys step_keys names.
  assert len(used) == 5
  assert len(set(used)) == 5
  expected = step_keys(key, 2, True)
  assert set(used) == {k for keys in expected.values() for k in _key_bytes(keys)}


@pytest.mark.parametrize("loss", ["nonsaturating", "wgan-gp"])
def test_each_update_leaves_the_other_network_bit_identical(loss):
  spec = LOSSES[loss]
  state = create_gan_state("dcgan", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  batch = _batch()
  keys = jax.random.split(jax.random.PRNGKey(3), 3)
  after_d, _ = jax.jit(functools.partial(
      discriminator_update, spec=spec))(
          state, batch["image"], batch["label"], noise_key=keys[0],
          interpolation_key=keys[1])
  assert _equal(after_d.generator, state.generator)  # Params and BN statistics.
  assert not _equal(after_d.discriminator.params, state.discriminator.params)

  after_g, _ = jax.jit(functools.partial(
      generator_update, batch_size=8, spec=spec))(
          after_d, labels=batch["label"], noise_key=keys[2])
  assert _equal(after_g.discriminator, after_d.discriminator)
  assert not _equal(after_g.generator.params, after_d.generator.params)
  assert not _equal(after_g.generator.batch_stats, after_d.generator.batch_stats)


def test_gan_step_metrics_and_step_count():
  state = create_gan_state("mlp", SHAPE, jax.random.PRNGKey(0))
  step = jax.jit(functools.partial(gan_step, loss="wgan-gp", n_critic=2))
  new_state, metrics = step(state, _batch(), jax.random.PRNGKey(1))
  assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake",
                          "gradient_penalty"}
  assert all(m.shape == () for m in metrics.values())
  assert int(new_state.step) == 1


@pytest.mark.parametrize("n_critic,loops", [(1, False), (2, True)])
def test_only_several_critic_updates_are_a_loop(n_critic, loops):
  """One critic update is traced inline, several as a scan.

  XLA's CPU backend compiles the convolutions of a scan body, even of a
  length-1 one, in layouts its fast convolution code does not take.
  """
  state = create_gan_state("mlp", SHAPE, jax.random.PRNGKey(0))
  jaxpr = jax.make_jaxpr(functools.partial(gan_step, n_critic=n_critic))(
      state, _batch(), jax.random.PRNGKey(1))
  assert any(e.primitive.name == "scan" for e in jaxpr.eqns) == loops


def test_device_averaging_keeps_replicas_identical():
  """Under vmap with an axis name (a stand-in for devices), gradients are averaged."""
  state = create_gan_state("dcgan", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  batch = jax.tree.map(lambda x: x.reshape((2, 4, *x.shape[1:])), _batch())
  replicated = jax.tree.map(lambda x: jnp.stack([x, x]), state)
  step = jax.jit(jax.vmap(functools.partial(gan_step, axis_name="devices"),
                          in_axes=(0, 0, None), axis_name="devices"))
  new_state, metrics = step(replicated, batch, jax.random.PRNGKey(1))
  first = jax.tree.map(lambda x: x[0], new_state)
  second = jax.tree.map(lambda x: x[1], new_state)
  assert _equal(first, second)
  assert not _equal(first.generator.params, state.generator.params)
  np.testing.assert_array_equal(metrics["d_loss"][0], metrics["d_loss"][1])


def test_dcgan_makes_every_supported_size_and_rejects_others():
  for side in DCGAN_SIZES:
    for channels in (1, 3):
      generator, discriminator = create_gan_models("dcgan", (side, side, channels))
      z = jnp.zeros((2, 16))
      images, _ = jax.eval_shape(
          lambda z: generator.init_with_output(jax.random.PRNGKey(0), z), z)
      assert images.shape == (2, side, side, channels)
      logits, _ = jax.eval_shape(
          lambda x: discriminator.init_with_output(jax.random.PRNGKey(0), x),
          images)
      assert logits.shape == (2,)
  with pytest.raises(ConfigError, match="cannot make 16x16 images; it supports 8x8, 28x28, 32x32"):
    create_gan_models("dcgan", (16, 16, 1))
  with pytest.raises(ConfigError, match="unknown architecture 'vit'"):
    create_gan_models("vit", SHAPE)
  with pytest.raises(ConfigError, match="unknown loss 'lsgan'"):
    gan_step(create_gan_state("mlp", SHAPE, jax.random.PRNGKey(0)), _batch(),
             jax.random.PRNGKey(0), loss="lsgan")


def test_samples_are_images_in_generator_range():
  state = create_gan_state("dcgan", SHAPE, jax.random.PRNGKey(0), num_classes=10)
  images = sample(state, jnp.ones((3, 64)), jnp.array([0, 1, 2]))
  assert images.shape == (3, *SHAPE)
  assert float(jnp.max(jnp.abs(images))) <= 1.0

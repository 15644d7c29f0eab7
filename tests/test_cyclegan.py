"""CycleGAN: its losses by hand, the image pool's rule, isolated updates, the script end to end."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_script, write_npz
from dlcore.adversarial.losses import LOSSES
from dlcore.cyclegan import (CycleGanConfig, NetworkSpec,
                             create_cyclegan_state, create_pool,
                             cyclegan_step, query_pool)
from dlcore.cyclegan.pool import pool_draws
from dlcore.cyclegan.state import apply
from dlcore.cyclegan.steps import (generator_losses, generators_update,
                                   pool_keys)
from dlcore.data import load_dataset
from dlcore.data.digit_domains import photo_pairs
from dlcore.optim import OptimizerConfig, learning_rate_schedule

cyclegan = load_script("cyclegan")

TINY = NetworkSpec(g_width=4, g_blocks=1, g_downsamplings=1, d_width=4,
                   d_layers=1)
SHAPE = (16, 16, 3)
LSGAN = LOSSES["least-squares"]


@functools.cache
def tiny_state():
  return create_cyclegan_state(TINY, SHAPE, jax.random.PRNGKey(0),
                               tx=optax.sgd(0.1), pool_size=3)


def images(seed: int, count: int = 4) -> jax.Array:
  return jax.random.uniform(jax.random.PRNGKey(seed), (count, *SHAPE),
                            minval=-1.0)


def test_least_squares_losses_by_hand():
  real, fake = jnp.array([0.5, 1.5]), jnp.array([0.25, -1.0])
  # ((0.5-1)^2 + (1.5-1)^2) / 2 + (0.25^2 + 1^2) / 2 = 0.25 + 0.53125.
  assert LSGAN.discriminator(real, fake) == pytest.approx(0.78125)
  # ((0.25-1)^2 + (-1-1)^2) / 2 = (0.5625 + 4) / 2.
  assert LSGAN.generator(fake) == pytest.approx(2.28125)
  zeros = jnp.zeros((2, 3, 3))  # A grid of patch logits.
  assert LSGAN.discriminator(zeros, zeros) == LSGAN.generator(zeros) == 1.0


def test_constant_then_linear_schedule_decays_in_the_second_half():
  schedule = learning_rate_schedule(
      OptimizerConfig(lr=2e-4, schedule="constant_then_linear"), 100)
  assert [float(schedule(t)) for t in (0, 49, 50)] == pytest.approx(
      [2e-4, 2e-4, 2e-4])
  assert float(schedule(75)) == pytest.approx(1e-4)
  assert float(schedule(100)) == pytest.approx(0.0)


def reference_pool(size, images, u, index):
  """junyanz's ``ImagePool.query``, image by image, on given draws."""
  pool, served = [], []
  for image, p, i in zip(images, u, index):
    if len(pool) < size:
      pool.append(image)
      served.append(image)
    elif p > 0.5:
      served.append(pool[i])
      pool[i] = image
    else:
      served.append(image)
  return np.stack(pool), np.stack(served)


def test_pool_follows_the_papers_rule_and_swaps_half_the_time():
  size, count = 5, 2000
  new = jnp.arange(1.0, count + 1).reshape(count, 1, 1, 1)  # Image i is i+1.
  key = jax.random.PRNGKey(7)
  pool, served, swapped = jax.jit(query_pool)(create_pool(size, (1, 1, 1)),
                                              new, key)
  expected_pool, expected_served = reference_pool(
      size, np.asarray(new), *map(np.asarray, pool_draws(key, count, size)))
  np.testing.assert_array_equal(pool.images, expected_pool)
  np.testing.assert_array_equal(served, expected_served)
  assert pool.images.shape == (size, 1, 1, 1) and int(pool.count) == size
  assert not swapped[:size].any()  # Filling: each image is stored and served.
  np.testing.assert_array_equal(swapped, served[:, 0, 0, 0] != new[:, 0, 0, 0])
  assert 0.45 < float(swapped[size:].mean()) < 0.55
  assert bool(jnp.all(served[swapped] < new[swapped]))  # Older images.
  # A pool of size 0 serves the new images.
  _, served, _ = query_pool(create_pool(0, (1, 1, 1)), new[:3], key)
  np.testing.assert_array_equal(served, new[:3])


def test_pool_draws_are_distinct():
  keys = pool_keys(jax.random.PRNGKey(3))
  assert not np.array_equal(keys["pool_a"], keys["pool_b"])
  u_a, i_a = pool_draws(keys["pool_a"], 64, 50)
  u_b, i_b = pool_draws(keys["pool_b"], 64, 50)
  assert len(set(np.asarray(u_a).tolist() + np.asarray(u_b).tolist())) == 128
  assert not np.array_equal(i_a, i_b)


def test_generators_and_discriminators_start_different():
  state = tiny_state()
  differ = lambda x, y: any(not np.array_equal(p, q) for p, q in zip(
      jax.tree.leaves(x.params), jax.tree.leaves(y.params)))
  assert differ(state.generator_ab, state.generator_ba)
  assert differ(state.discriminator_a, state.discriminator_b)
  # The paper's initialisation: kernels ~ N(0, 0.02^2), biases 0.
  leaves = jax.tree_util.tree_leaves_with_path(state.generator_ab.params)
  kernels = np.concatenate([np.ravel(x) for path, x in leaves
                            if path[-1].key == "kernel"])
  assert kernels.size > 2000 and 0.018 < kernels.std() < 0.022
  assert all(not np.any(x) for path, x in leaves if path[-1].key == "bias")
  assert apply(state.generator_ab, images(0)).shape == (4, *SHAPE)
  assert apply(state.discriminator_a, images(0)).shape == (4, 6, 6)


def test_identity_generators_have_no_cycle_or_identity_loss():
  state = tiny_state()
  as_identity = lambda g: g.replace(apply_fn=lambda variables, x: x)
  state = state.replace(generator_ab=as_identity(state.generator_ab),
                        generator_ba=as_identity(state.generator_ba))
  a, b = images(1), images(2)
  total, (metrics, fake_a, fake_b) = generator_losses(
      state, None, None, a, b, spec=LSGAN, cycle_weight=10.0,
      identity_weight=0.5)
  for name in ("cycle_a", "cycle_b", "identity_a", "identity_b"):
    assert float(metrics[name]) == 0.0, name
  gan_ab = LSGAN.generator(apply(state.discriminator_b, a))
  gan_ba = LSGAN.generator(apply(state.discriminator_a, b))
  assert float(total) == pytest.approx(float(gan_ab + gan_ba), rel=1e-6)
  np.testing.assert_array_equal(fake_a, b)
  np.testing.assert_array_equal(fake_b, a)


def test_generator_loss_by_hand():
  state, a, b = tiny_state(), images(1), images(2)
  g = lambda x: apply(state.generator_ab, x)
  f = lambda x: apply(state.generator_ba, x)
  l1 = lambda x, y: float(jnp.mean(jnp.abs(x - y)))
  expected = (float(LSGAN.generator(apply(state.discriminator_b, g(a))))
              + float(LSGAN.generator(apply(state.discriminator_a, f(b))))
              + 10.0 * (l1(f(g(a)), a) + l1(g(f(b)), b))
              + 0.5 * 10.0 * (l1(g(b), b) + l1(f(a), a)))
  total, _ = generator_losses(
      state, state.generator_ab.params, state.generator_ba.params, a, b,
      spec=LSGAN, cycle_weight=10.0, identity_weight=0.5)
  assert float(total) == pytest.approx(expected, rel=1e-5)


def test_each_update_touches_only_its_own_network():
  state, batch = tiny_state(), {"image_a": images(1), "image_b": images(2)}
  same = lambda x, y: all(np.array_equal(p, q) for p, q in zip(
      jax.tree.leaves(x), jax.tree.leaves(y)))
  after_g, _, fake_a, fake_b = jax.jit(functools.partial(
      generators_update, spec=LSGAN))(state, batch["image_a"],
                                      batch["image_b"])
  assert same(after_g.discriminator_a, state.discriminator_a)
  assert same(after_g.discriminator_b, state.discriminator_b)
  assert same((after_g.pool_a, after_g.pool_b), (state.pool_a, state.pool_b))
  assert not same(after_g.generator_ab.params, state.generator_ab.params)
  assert not same(after_g.generator_ba.params, state.generator_ba.params)

  after, metrics = jax.jit(cyclegan_step)(state, batch, jax.random.PRNGKey(5))
  for name in ("generator_ab", "generator_ba"):  # Untouched by the D updates.
    for x, y in zip(jax.tree.leaves(getattr(after, name).params),
                    jax.tree.leaves(getattr(after_g, name).params)):
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  # With plain SGD, D_B moves by -lr * grad of HALF its loss on pooled fakes.
  d_b = state.discriminator_b
  served = np.asarray(after.pool_b.images)[:3]  # The first 3 filled the pool.
  np.testing.assert_allclose(served, np.asarray(fake_b)[:3], rtol=1e-5,
                             atol=1e-6)
  half_loss = lambda p: 0.5 * LSGAN.discriminator(
      apply(d_b, batch["image_b"], p), apply(d_b, fake_b, p))
  loss, grads = jax.jit(jax.value_and_grad(half_loss))(d_b.params)
  assert float(metrics["d_b_loss"]) == pytest.approx(float(loss), rel=1e-5)
  expected = jax.tree.map(lambda p, g: p - 0.1 * g, d_b.params, grads)
  for x, y in zip(jax.tree.leaves(after.discriminator_b.params),
                  jax.tree.leaves(expected)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
  assert int(after.step) == 1 and int(after.pool_a.count) == 3


def _domains(tmp_path) -> list[str]:
  a = write_npz(tmp_path / "a.npz", n_train=32, n_test=8, shape=SHAPE)
  b = write_npz(tmp_path / "b.npz", n_train=32, n_test=8, shape=SHAPE, seed=1)
  return ["--domain-a", str(a), "--domain-b", str(b)]


def _records(workdir) -> list[dict]:
  drop = ("seconds", "steps_per_sec")
  return [{k: v for k, v in json.loads(line).items() if k not in drop}
          for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_script_writes_everything(tmp_path):
  """The outputs, and the measures before and after training; resume: tests/test_resume.py."""
  tiny = _domains(tmp_path) + [
      "--g-width", "4", "--g-blocks", "1", "--g-downsamplings", "1",
      "--d-width", "4", "--d-layers", "1", "--pool-size", "3",
      "--batch-size", "4", "--steps", "4", "--log-every", "2",
      "--eval-every", "2", "--sample-every", "2", "--checkpoint-every", "2",
      "--classifier-epochs", "1",
      "--classifier-dir", str(tmp_path / "classifiers")]
  a = tmp_path / "a"
  summary = cyclegan.main(tiny + ["--workdir", str(a)])
  for name in ("metrics.jsonl", "summary.json", "curves.png", "model.txt",
               "translation_ab.png", "translation_ba.png",
               "samples_000002.png", "samples_000004.png"):
    assert (a / name).is_file(), name
  assert json.loads((a / "summary.json").read_text()) == summary
  records = _records(a)
  assert [r["step"] for r in records] == [0, 2, 4]
  for name in ("label_preservation_ab", "label_preservation_ba", "fcd_a",
               "fcd_b", "cycle_l1"):
    assert summary[name] == records[-1][name]
    assert summary[f"{name}_initial"] == records[0][name]
  # The ceiling is each judge on its own domain's real test images: what the
  # judge's own training run measured.
  for direction, target in (("ab", "b"), ("ba", "a")):
    assert summary[f"label_preservation_{direction}_ceiling"] == pytest.approx(
        summary[f"classifier_{target}_test_accuracy"])


def _uint8_rows(images: np.ndarray, labels: np.ndarray) -> list:
  """Each (image as uint8 bytes, label), sorted: a split as a multiset."""
  images = np.round(np.asarray(images) * (255 if images.dtype != np.uint8
                                          else 1)).astype(np.uint8)
  return sorted((image.tobytes(), int(label))
                for image, label in zip(images, labels))


def test_embedded_domains_are_disjoint_halves_and_pairs_match_them(data_dir):
  """B's photos are exactly what the loader gives; the digit under each is no image of A's train split."""
  grey = load_dataset("digits32", data_dir)
  photo = load_dataset("digits32_photo", data_dir)
  for split in ("train", "test"):
    photos, digits, labels = photo_pairs(split)
    loaded = getattr(photo, split)
    assert _uint8_rows(photos, labels) == _uint8_rows(loaded.images,
                                                      loaded.labels)
  _, train_digits, _ = photo_pairs("train")
  grey_train = {image for image, _ in _uint8_rows(grey.train.images,
                                                  grey.train.labels)}
  assert not grey_train & {d.tobytes() for d in train_digits}
  # Both test splits come from the same digits: A's test images are the
  # digits under B's test photos.
  _, test_digits, test_labels = photo_pairs("test")
  assert _uint8_rows(test_digits, test_labels) == _uint8_rows(
      grey.test.images, grey.test.labels)


def test_paired_generator_learns_the_digit_under_each_photo():
  """After 100 steps on pairs, F(photo) is far nearer its own digit than the next photo's (0.52 of it)."""
  bound = load_script("cyclegan_paired_bound")
  config = CycleGanConfig(steps=100, g_width=4, g_blocks=1, batch_size=8)
  photos, digits, _ = photo_pairs("test")
  photos, digits = (x.astype(np.float32) / 127.5 - 1.0 for x in (photos,
                                                                  digits))
  translated = jax.jit(apply)(
      bound.train_paired_generator(config, optax.adam(2e-3)).generator_ba,
      photos)
  own = float(jnp.mean(jnp.abs(translated - digits)))
  others = float(jnp.mean(jnp.abs(translated - np.roll(digits, 1, axis=0))))
  assert own < 0.6 * others, (own, others)

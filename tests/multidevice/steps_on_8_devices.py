"""Every dlcore step on 8 simulated CPU devices equals one device on the whole batch.

Runs in its own interpreter with 8 CPU devices: ``tests/test_parallel.py``
launches it, or run it directly::

  python -m pytest -q tests/multidevice/steps_on_8_devices.py

The device count is fixed below, before JAX starts its backend; the file
name keeps pytest's normal collection (one CPU device) away from it.

To prove a new step, add a ``StepCase``: the step, a function building its
initial state and one building a global batch (numpy, 8 * k rows). Each case
runs under every mechanism of ``dlcore.parallel``.
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8")

import contextlib  # pylint: disable=wrong-import-position
import dataclasses
import functools
import tempfile
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P

from dlcore import parallel, sharding
from dlcore.adversarial import GanConfig, create_gan_state, gan_step
from dlcore.adversarial import train_and_evaluate as train_gan
from dlcore.cyclegan import (NetworkSpec, create_cyclegan_state,
                                         cyclegan_step)
from dlcore.checkpoint import Checkpointer
from dlcore.data import Split, eval_batches, load_dataset
from dlcore.errors import ConfigError
from dlcore.experiment import evaluate
from dlcore.files import read_jsonl
from dlcore.loop import CHECKPOINT_DIR, METRICS_FILE
from dlcore.models import ResNet, create_classifier
from dlcore.optim import OptimizerConfig, create_optimizer
from dlcore.rl.ppo import PpoConfig
from dlcore.rl.ppo import train_and_evaluate as train_ppo
from dlcore.rl.dqn import DqnConfig
from dlcore.rl.dqn import train_and_evaluate as train_dqn
from dlcore.rl.dqn.state import create_dqn_state
from dlcore.rl.dqn.steps import dqn_step
from dlcore.rl.seeds import seed_mesh
from dlcore.state import create_train_state
from dlcore.supervised import ClassifyConfig, train_and_evaluate
from dlcore.supervised.steps import eval_step, train_step
from dlcore.vae import create_vae_state, vae_step
from dlcore.models import UNet
from dlcore.segmentation import AugmentConfig
from dlcore.segmentation import eval_step as segmentation_eval_step
from dlcore.segmentation import train_step as segmentation_step
from dlcore.sharding import MeshConfig, ShardingConfig

DEVICES = 8
# A fresh TFDS directory (the launcher's tmp_path), never the user's cache.
DATA_DIR = (os.environ.get("DLCORE_TEST_DATA_DIR")
            or tempfile.mkdtemp(prefix="tfds-"))


@dataclasses.dataclass(frozen=True, eq=False)  # Hashed by identity.
class StepCase:
  """A step to prove: ``step(state, batch, key, *, axis_name, **options)``."""
  name: str
  step: Callable[..., Any]
  make_state: Callable[[], Any]
  make_batch: Callable[[], dict[str, np.ndarray]]
  options: dict[str, Any] = dataclasses.field(default_factory=dict)


digits = functools.cache(lambda: load_dataset("digits", DATA_DIR))


def digits_batch(size: int = 32) -> dict[str, np.ndarray]:
  """The first ``size`` training digits: ``image [size, 8, 8, 1]``, ``label``."""
  train = digits().train
  return {"image": train.images[:size], "label": train.labels[:size]}


def small_resnet():
  """dlcore's ResNet (BatchNorm after every convolution) with two blocks."""
  return ResNet(stage_sizes=(1, 1), stage_features=(8, 16),
                projection_shortcut=False)


@functools.cache
def _compiled_init(model: str | Callable[[], Any]):
  module = create_classifier(model, 10) if isinstance(model, str) else model()
  return jax.jit(lambda key: create_train_state(
      module, optax.sgd(0.1), jnp.zeros((1, 8, 8, 1)), key))


def classifier_state(model: str | Callable[[], Any]):
  """A fresh state; plain SGD, so a gradient of the wrong scale shows.

  Initialisation is compiled once (eager ``init`` would compile op by op).
  """
  return _compiled_init(model)(jax.random.PRNGKey(0))


def with_sgd(state, lr: float = 0.1):
  """``state`` (a ``TrainState``) with plain SGD: Adam's normalised first
  step would hide a gradient ``n`` times too large."""
  tx = optax.sgd(lr)
  return state.replace(tx=tx, opt_state=tx.init(state.params))


def frozen_stem_state():
  """The small ResNet with its stem frozen: that BatchNorm in inference mode."""
  stem = "(Conv|BatchNorm)_0/.*"
  state = classifier_state(small_resnet)
  tx = create_optimizer(OptimizerConfig(name="sgd", lr=0.1, momentum=0,
                                        freeze=(stem,)), 10)
  return state.replace(tx=tx, opt_state=tx.init(state.params), frozen=(stem,))


@functools.cache
def _compiled_gan_init(arch: str):
  return jax.jit(lambda key: create_gan_state(arch, (8, 8, 1), key,
                                              latent_dim=8))


def gan_state(arch: str):
  """A GAN on 8x8 images, both networks on SGD (dcgan: BatchNorm in G)."""
  state = _compiled_gan_init(arch)(jax.random.PRNGKey(0))
  return state.replace(generator=with_sgd(state.generator),
                       discriminator=with_sgd(state.discriminator))


def gan_batch(size: int = 16) -> dict[str, np.ndarray]:
  """Real digits rescaled to the generator's range [-1, 1]."""
  batch = digits_batch(size)
  return {"image": batch["image"] * 2.0 - 1.0, "label": batch["label"]}


def vae_state():
  return with_sgd(jax.jit(lambda key: create_vae_state((8, 8, 1), key))(
      jax.random.PRNGKey(0)), lr=1e-3)


def dqn_state():
  """A CartPole-sized Q-network (4 observations, 2 actions) on SGD."""
  return with_sgd(create_dqn_state(DqnConfig(), (4,), 2,
                                   jax.random.PRNGKey(0)), lr=0.01)


def dqn_transitions(size: int = 16) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  return {"obs": rng.normal(size=(size, 4)).astype(np.float32),
          "action": rng.integers(0, 2, size).astype(np.int32),
          "reward": rng.normal(size=size).astype(np.float32),
          "next_obs": rng.normal(size=(size, 4)).astype(np.float32),
          "terminated": rng.random(size) < 0.25}


@functools.cache
def _compiled_unet_init():
  return jax.jit(lambda key: create_train_state(
      UNet(4, depth=1, width=4), optax.sgd(0.1), jnp.zeros((1, 8, 8, 1)), key))


def unet_state():
  """A one-level U-Net (BatchNorm) on 8x8 digits, 4 classes, plain SGD."""
  return _compiled_unet_init()(jax.random.PRNGKey(0))


def digit_masks(size: int = 16) -> dict[str, np.ndarray]:
  """Digits with masks: 0 dark, 1-3 by brightness, 255 (ignored) on the
  first rows of a few examples, so devices count different pixels."""
  images = digits_batch(size)["image"]
  masks = np.digitize(images[..., 0], [0.1, 0.4, 0.7]).astype(np.int32)
  masks[::3, :2] = 255
  return {"image": images, "label": masks}


def cyclegan_state():
  """CycleGAN on 8x8 images, all four networks on SGD; pools of 5 < 16 images.

  The pools are replicated: every device queries its copy with the global
  batch's fakes, so after the step they equal the one-device pools.
  """
  spec = NetworkSpec(g_width=4, g_blocks=1, g_downsamplings=1, d_width=4,
                     d_layers=1)
  return create_cyclegan_state(spec, (8, 8, 1), jax.random.PRNGKey(0),
                               tx=optax.sgd(0.1), pool_size=5)


def cyclegan_batch(size: int = 16) -> dict[str, np.ndarray]:
  """Unpaired digits: the first ``size`` as domain A, the next as B, in [-1, 1]."""
  images = digits_batch(2 * size)["image"] * 2.0 - 1.0
  return {"image_a": images[:size], "image_b": images[size:]}


CASES = [
    StepCase("supervised-cnn", train_step,
             functools.partial(classifier_state, "cnn"), digits_batch),
    StepCase("supervised-resnet-batchnorm", train_step,
             functools.partial(classifier_state, small_resnet), digits_batch),
    StepCase("supervised-resnet-frozen-stem", train_step, frozen_stem_state,
             digits_batch),
    StepCase("gan-mlp-wgan-gp", gan_step, functools.partial(gan_state, "mlp"),
             gan_batch, {"loss": "wgan-gp", "n_critic": 2}),
    StepCase("gan-dcgan-batchnorm-nonsaturating", gan_step,
             functools.partial(gan_state, "dcgan"), gan_batch),
    StepCase("vae", vae_step, vae_state, lambda: {
        "image": digits_batch(16)["image"]}),
    StepCase("dqn-double", dqn_step, dqn_state, dqn_transitions,
             {"double": True, "loss": "huber"}),
    StepCase("segmentation-unet-augmented-weighted", segmentation_step,
             unet_state, digit_masks,
             {"class_weights": (0.5, 1.0, 2.0, 1.5),
              "augment_config": AugmentConfig(flip=True, max_shift=2,
                                              max_zoom=1.5)}),
    StepCase("cyclegan-least-squares-pools", cyclegan_step, cyclegan_state,
             cyclegan_batch),
    StepCase("supervised-transformer-dropout", train_step,
             functools.partial(classifier_state, "transformer"), digits_batch),
    StepCase("supervised-cnn-shift", train_step,
             functools.partial(classifier_state, "cnn"), digits_batch,
             {"shift": 2}),
]

# Where a step runs: (mechanism, mesh). Every layout of 8 devices must
# compute what one device computes on the whole batch.
LAYOUTS = {
    "dp8-jit": ("jit", MeshConfig(data=8)),
    "dp8-shard_map": ("shard_map", MeshConfig(data=8)),
    "dp8-pmap": ("pmap", MeshConfig(data=8)),
    "fsdp8": ("jit", MeshConfig(data=1, fsdp=8)),
    "fsdp4-tp2": ("jit", MeshConfig(data=1, fsdp=4, tensor=2)),
}
# The test models are small: split every leaf the fsdp axis divides.
SPLIT_SMALL = ShardingConfig(fsdp_min_size=16)


@functools.cache
def one_device_step(case: StepCase):
  """``(initial state, new state, metrics)`` of one device on the whole batch."""
  state = nn.meta.unbox(case.make_state())
  step = jax.jit(functools.partial(case.step, **case.options))
  new_state, metrics = step(state, case.make_batch(), jax.random.PRNGKey(1))
  return jax.device_get((state, new_state, metrics))


def placed(make_state, mechanism: str, mesh, config=SPLIT_SMALL):
  """``(state, specs)``: a fresh state placed as ``mechanism`` places it on ``mesh``."""
  state = nn.meta.unbox(make_state())
  treedef = jax.tree.structure(state)
  if mechanism == "jit":
    specs = treedef.unflatten(jax.tree.leaves(
        sharding.state_specs(jax.eval_shape(make_state), mesh, config),
        is_leaf=lambda x: isinstance(x, P)))
  else:
    specs = jax.tree.map(lambda _: P(), state)
  return jax.device_put(state, jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs,
      is_leaf=lambda x: isinstance(x, P))), specs


def assert_same_on_every_device(tree):
  for x in jax.tree.leaves(tree):
    first = np.asarray(x.addressable_shards[0].data)
    for shard in x.addressable_shards[1:]:
      np.testing.assert_array_equal(np.asarray(shard.data), first)


def assert_updates_close(before, after, expected_after):
  """New states agree leaf by leaf, compared as updates ``after - before``."""
  for old, new, want in zip(jax.tree.leaves(before), jax.tree.leaves(after),
                            jax.tree.leaves(expected_after)):
    np.testing.assert_allclose(np.asarray(new) - old, np.asarray(want) - old,
                               rtol=1e-4, atol=1e-6)


def test_eight_devices_are_simulated():
  assert jax.device_count() == DEVICES
  assert parallel.data_mesh().size == DEVICES


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_step_on_8_devices_equals_one_device(case: StepCase, layout: str):
  """Every layout computes one device's update, up to float reduction order.

  Sums over 8 devices' shards are added in another order than one device
  adds them, so states agree to ``rtol 1e-4`` as updates and metrics to
  ``1e-5``: not bit for bit.
  """
  mechanism, mesh_config = LAYOUTS[layout]
  before, expected_state, expected_metrics = one_device_step(case)
  mesh = sharding.make_mesh(mesh_config, jax.devices())
  state, specs = placed(case.make_state, mechanism, mesh)
  step = parallel.wrap(case.step, mesh, mechanism,
                       in_specs=(specs, parallel.BATCH, parallel.REPLICATED),
                       out_specs=(specs, parallel.REPLICATED),
                       donate_argnums=0, **case.options)
  with (jax.set_mesh(mesh) if mechanism == "jit"  # As experiment.fit does.
        else contextlib.nullcontext()):
    state, metrics = step(state, parallel.shard_batch(case.make_batch(), mesh),
                          jax.random.PRNGKey(1))
  assert_same_on_every_device(metrics)
  for spec, leaf in zip(jax.tree.leaves(specs, is_leaf=lambda x: isinstance(
      x, P)), jax.tree.leaves(state)):
    assert leaf.sharding.spec == spec  # The state stays where it was put.
  assert_updates_close(before, jax.device_get(state), expected_state)
  host_metrics = parallel.to_host(metrics)
  assert host_metrics.keys() == expected_metrics.keys()
  for name, value in host_metrics.items():
    np.testing.assert_allclose(value, expected_metrics[name], rtol=1e-5,
                               err_msg=name)


def test_the_layouts_really_split_the_state():
  """FSDP splits the large leaves over fsdp; tensor parallelism splits the Transformer's heads and MLP."""
  adam = optax.adam(1e-3)
  make = lambda: create_train_state(create_classifier("transformer", 10), adam,
                                    jnp.zeros((1, 8, 8, 1)),
                                    jax.random.PRNGKey(0))
  fsdp, _ = placed(make, "jit", sharding.make_mesh(LAYOUTS["fsdp8"][1],
                                                    jax.devices()))
  kernel = fsdp.params["EncoderBlock_0"]["Dense_0"]["kernel"]  # [64, 128]
  assert kernel.sharding.spec == P("fsdp", "tensor")  # tensor: 1 device.
  assert kernel.addressable_shards[0].data.shape == (8, 128)
  both, _ = placed(make, "jit", sharding.make_mesh(LAYOUTS["fsdp4-tp2"][1],
                                                    jax.devices()))
  query = both.params["EncoderBlock_0"]["MultiHeadAttention_0"]["query"]
  assert query["kernel"].sharding.spec == P("fsdp", "tensor", None)
  assert query["kernel"].addressable_shards[0].data.shape == (16, 2, 16)
  mlp = both.params["EncoderBlock_0"]["Dense_1"]["kernel"]  # [128, 64]
  assert mlp.sharding.spec == P("tensor", "fsdp")
  # Adam's moments are split as their parameters are.
  mu = both.opt_state[0].mu["EncoderBlock_0"]["Dense_1"]["kernel"]
  assert mu.sharding.spec == P("tensor", "fsdp")


def test_per_device_batchnorm_statistics_would_differ():
  """The comparisons above can fail: the first device's 4 examples alone."""
  case = CASES[1]
  _, synced, _ = one_device_step(case)
  first_shard = {k: v[:4] for k, v in case.make_batch().items()}
  local, _ = jax.jit(case.step)(case.make_state(), first_shard,
                                jax.random.PRNGKey(1))
  gaps = [np.max(np.abs(np.asarray(a) - b)) for a, b in zip(
      jax.tree.leaves(local.batch_stats), jax.tree.leaves(synced.batch_stats))]
  assert max(gaps) > 1e-3


@pytest.mark.parametrize("mechanism", parallel.MECHANISMS)
def test_sharded_evaluation_is_exact(mechanism: str):
  """50 examples in batches of 20: every batch padded to 24 rows and masked."""
  test = digits().test
  split = Split(test.images[:50], test.labels[:50])
  state = classifier_state("cnn")
  mesh = parallel.data_mesh()
  sharded = evaluate(parallel.data_parallel(eval_step, mesh, mechanism),
                     parallel.replicate(state, mesh), eval_batches(split, 20),
                     mesh)
  single = evaluate(jax.jit(eval_step), state, eval_batches(split, 20))
  assert sharded["accuracy"] == single["accuracy"]
  np.testing.assert_allclose(sharded["loss"], single["loss"], rtol=1e-6)


@pytest.mark.parametrize("mechanism", parallel.MECHANISMS)
def test_seeds_spread_over_devices(mechanism: str):
  """A ``vmap`` over 16 seeds, 2 per device, equals the same ``vmap`` on one."""
  def returns(keys, *, axis_name):
    del axis_name  # Seeds are independent: no collective.
    return {"return": jax.vmap(lambda k: jax.random.normal(k, (3,)).sum())(keys)}
  keys = jax.random.split(jax.random.PRNGKey(0), 16)
  mesh = parallel.data_mesh()
  spread = parallel.wrap(returns, mesh, mechanism,
                         in_specs=(parallel.MEMBERS,),
                         out_specs=parallel.MEMBERS, collectives=False)(
                             parallel.shard_batch(keys, mesh, parallel.MEMBERS))
  assert spread["return"].sharding.spec == P(parallel.AXIS)
  np.testing.assert_allclose(np.asarray(spread["return"]),
                             returns(keys, axis_name=None)["return"],
                             rtol=1e-6)


@pytest.mark.parametrize("mechanism", parallel.MECHANISMS)
def test_many_queued_steps_do_not_deadlock(mechanism: str):
  """300 steps dispatched back to back (unbounded, XLA's CPU collectives hang)."""
  def count(total, batch, *, axis_name):
    mean = batch.mean() if axis_name is None else lax.pmean(batch.mean(),
                                                            axis_name)
    return total + mean, {"mean": mean}
  mesh = parallel.data_mesh()
  step = parallel.data_parallel(count, mesh, mechanism, donate_argnums=0)
  total = parallel.replicate(jnp.zeros(()), mesh)
  batch = parallel.shard_batch(np.arange(16, dtype=np.float32), mesh)
  for _ in range(300):
    total, _ = step(total, batch)
  assert parallel.to_host(total) == pytest.approx(300 * 7.5)


def test_indivisible_batch_names_both_numbers():
  mesh = parallel.data_mesh()
  step = parallel.data_parallel(train_step, mesh)
  with pytest.raises(ConfigError, match="batch size 12 .* 8 devices"):
    step(parallel.replicate(classifier_state("cnn"), mesh),
         digits_batch(12), jax.random.PRNGKey(0))


def test_shard_of_global_draw_matches_one_draw():
  key = jax.random.PRNGKey(3)
  mesh = parallel.data_mesh()
  draw = jax.jit(jax.shard_map(
      lambda k: parallel.shard_of_global_draw(jax.random.normal, k, (2, 3),
                                              parallel.AXIS),
      mesh=mesh, in_specs=P(), out_specs=P(parallel.AXIS)))(key)
  np.testing.assert_array_equal(np.asarray(draw),
                                jax.random.normal(key, (2 * DEVICES, 3)))


@pytest.mark.slow
def test_classify_on_8_devices_matches_one_device(tmp_path):
  """Same seed, same global batches: test accuracy within 0.5 points."""
  config = ClassifyConfig(epochs=1, batch_size=32, data_dir=DATA_DIR)
  on_8 = train_and_evaluate(dataclasses.replace(
      config, workdir=str(tmp_path / "eight")))
  on_1 = train_and_evaluate(dataclasses.replace(
      config, devices=1, workdir=str(tmp_path / "one")))
  assert (on_8["num_devices"], on_1["num_devices"]) == (8, 1)
  assert abs(on_8["test_accuracy"] - on_1["test_accuracy"]) <= 0.005
  assert on_8["test_accuracy"] > 0.5  # It learnt something.


def saved_state(workdir) -> dict:
  """The last checkpoint of a run, as saved: nested dicts of numpy arrays."""
  checkpointer = Checkpointer(workdir / CHECKPOINT_DIR)
  try:
    return checkpointer.restore_latest()[0]
  finally:
    checkpointer.close()


def assert_trees_close(actual, expected, **tolerance):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(np.asarray(a, np.float64), b, **tolerance)


@pytest.mark.slow
def test_gan_training_on_8_devices_matches_one_device(tmp_path):
  """``train_gan``: 4 steps of an MLP GAN, the same metrics and parameters."""
  images = digits().train.images
  npz = tmp_path / "unlabelled.npz"  # No labels: no FCD classifier to train.
  np.savez(npz, x_train=images[:64], x_test=images[64:96])
  config = GanConfig(dataset=str(npz), arch="mlp", steps=4, batch_size=16,
                     latent_dim=8, log_every=2, sample_every=2)
  runs = {}
  for devices in (8, 1):
    workdir = tmp_path / f"on_{devices}"
    summary = train_gan(dataclasses.replace(config, devices=devices,
                                    workdir=str(workdir)))
    assert summary["num_devices"] == devices
    runs[devices] = (read_jsonl(workdir / METRICS_FILE), saved_state(workdir))
  (records_8, state_8), (records_1, state_1) = runs[8], runs[1]
  for on_8, on_1 in zip(records_8, records_1, strict=True):
    for name in on_1:
      if name.startswith("train_"):
        np.testing.assert_allclose(on_8[name], on_1[name], rtol=1e-4,
                                   err_msg=name)
  assert_trees_close(state_8, state_1, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_dqn_seeds_on_2_devices_match_one_device(tmp_path):
  """``dqn.train_and_evaluate``: 2 seeds, one per device, exactly as on one."""
  config = DqnConfig(total_steps=400, num_envs=4, seeds=2, buffer_size=200,
                     batch_size=16, learning_starts=100, train_every=4,
                     target_update_every=40, chunk_steps=200, eval_episodes=2,
                     checkpoint_every=400)
  runs = {}
  for devices in (2, 1):
    workdir = tmp_path / f"on_{devices}"
    summary = train_dqn(dataclasses.replace(config, devices=devices,
                                    workdir=str(workdir)))
    assert summary["num_devices"] == devices
    runs[devices] = (summary, read_jsonl(workdir / METRICS_FILE),
                     saved_state(workdir))
  (summary_2, records_2, state_2), (summary_1, records_1, state_1) = (
      runs[2], runs[1])
  assert summary_2["eval_return_per_seed"] == summary_1["eval_return_per_seed"]
  for on_2, on_1 in zip(records_2, records_1, strict=True):
    for name in ("episode_return_per_seed", "loss", "q_mean", "updates"):
      np.testing.assert_allclose(np.asarray(on_2[name], float),
                                 np.asarray(on_1[name], float), rtol=1e-5,
                                 err_msg=name)
  assert_trees_close(state_2["agent"]["params"], state_1["agent"]["params"],
                     rtol=1e-5, atol=1e-7)


def test_dqn_uses_the_most_devices_that_divide_the_seeds():
  assert seed_mesh(DqnConfig(seeds=12)).size == 6
  assert seed_mesh(DqnConfig(seeds=16)).size == 8
  assert seed_mesh(DqnConfig(seeds=7)).size == 7
  with pytest.raises(ConfigError, match="option seeds 6 does not divide by "
                     "option devices 4"):
    seed_mesh(DqnConfig(seeds=6, devices=4))


@pytest.mark.slow
def test_ppo_seeds_on_2_devices_match_one_device(tmp_path):
  """``ppo.train_and_evaluate``: 2 seeds, one per device, exactly as on one."""
  config = PpoConfig(total_steps=256, num_envs=4, num_steps=32, seeds=2,
                     num_minibatches=2, update_epochs=2, chunk_steps=128,
                     checkpoint_every=256, eval_episodes=2,
                     hidden_size=16)
  runs = {}
  for devices in (2, 1):
    workdir = tmp_path / f"on_{devices}"
    summary = train_ppo(dataclasses.replace(config, devices=devices,
                                    workdir=str(workdir)))
    assert summary["num_devices"] == devices
    runs[devices] = (summary, read_jsonl(workdir / METRICS_FILE),
                     saved_state(workdir))
  (summary_2, records_2, state_2), (summary_1, records_1, state_1) = (
      runs[2], runs[1])
  for name in ("eval_return_per_seed", "eval_return_stochastic_per_seed"):
    assert summary_2[name] == summary_1[name]
  for on_2, on_1 in zip(records_2, records_1, strict=True):
    assert on_2["episodes"] == on_1["episodes"] > 0
    for name in ("episode_return_per_seed", "loss", "value_loss", "approx_kl"):
      # approx_kl is ~1e-7 here, a difference of nearly equal numbers.
      np.testing.assert_allclose(np.asarray(on_2[name], float),
                                 np.asarray(on_1[name], float), rtol=1e-5,
                                 atol=1e-9, err_msg=name)
  assert_trees_close(state_2["agent"]["params"], state_1["agent"]["params"],
                     rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mechanism", parallel.MECHANISMS)
def test_summed_confusion_matrix_on_8_devices_equals_one_device(mechanism: str):
  """50 masked digits in batches of 20 (padded to 24): the same pixel counts."""
  batch = digit_masks(50)
  split = Split(batch["image"], batch["label"])
  state = unet_state()
  mesh = parallel.data_mesh()
  sharded = evaluate(parallel.data_parallel(segmentation_eval_step, mesh,
                                            mechanism),
                     parallel.replicate(state, mesh), eval_batches(split, 20),
                     mesh)
  single = evaluate(jax.jit(segmentation_eval_step), state,
                    eval_batches(split, 20))
  assert sharded.keys() == single.keys()
  for name in single:  # From integer counts: exactly equal; the loss close.
    if name != "loss":
      assert sharded[name] == single[name], name
  # float32 sums in another order: within a few ulps of float32's 1.2e-7.
  assert sharded["loss"] == pytest.approx(single["loss"], rel=1e-5)
  assert set(single) >= {"miou", "pixel_accuracy", "iou_0", "loss"}
  counts = jax.jit(segmentation_eval_step)(state, batch)["confusion"].counts
  assert int(counts.sum()) == int(np.sum(batch["label"] != 255))


def _mlp_run(tmp_path, **changes) -> ClassifyConfig:
  """The MLP (784 -> 256 -> 128 -> 10) on 28x28 random images: large enough to split."""
  npz = tmp_path / "digits28.npz"
  if not npz.exists():
    rng = np.random.default_rng(0)
    np.savez(npz, x_train=rng.random((96, 28, 28), np.float32),
             y_train=np.arange(96) % 10,
             x_test=rng.random((40, 28, 28), np.float32),
             y_test=np.arange(40) % 10)
  return dataclasses.replace(
      ClassifyConfig(dataset=str(npz), model="mlp", epochs=2, batch_size=16,
                     optimizer=OptimizerConfig(name="adam", lr=1e-3)),
      **changes)


@pytest.mark.slow
def test_fsdp_over_8_holds_an_eighth_of_the_state_per_device(tmp_path):
  """Measured from the arrays' shards: parameters and Adam's moments split 8 ways.

  The leaves below ``fsdp_min_size`` (biases, the 128 x 10 head) stay
  whole on every device;
  init writes each leaf straight into its shards: the compiled init's
  working memory per device is below the size of one whole kernel.
  """
  summaries = {}
  for name, mesh in (("replicated", MeshConfig(data=8)),
                     ("fsdp", MeshConfig(data=1, fsdp=8))):
    summaries[name] = train_and_evaluate(_mlp_run(
        tmp_path, mesh=mesh, epochs=1, workdir=str(tmp_path / name)))
  whole, split = summaries["replicated"], summaries["fsdp"]
  params = whole["param_bytes_per_device"]  # Every device holds all.
  biases = 4 * (256 + 128 + 10)
  assert params == 4 * (784 * 256 + 256 * 128 + 128 * 10) + biases
  small = biases + 4 * 128 * 10  # Replicated: below fsdp_min_size.
  assert split["param_bytes_per_device"] == (params - small) / 8 + small
  assert whole["optimizer_bytes_per_device"] == 2 * params + 4  # mu, nu, count
  assert split["optimizer_bytes_per_device"] == 2 * ((params - small) / 8
                                                     + small) + 4
  assert split["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
  table = (tmp_path / "fsdp" / "model.txt").read_text()
  assert "P('fsdp', None)" in table or "P(None, 'fsdp')" in table

  mesh = sharding.make_mesh(MeshConfig(data=1, fsdp=8), jax.devices())
  model, tx = create_classifier("mlp", 10), optax.adam(1e-3)
  init = lambda key: create_train_state(model, tx, jnp.zeros((1, 28, 28, 1)),
                                        key)
  specs = sharding.state_specs(jax.eval_shape(init, jax.random.PRNGKey(0)),
                               mesh, ShardingConfig())
  compiled = jax.jit(init, out_shardings=jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs,
      is_leaf=lambda x: isinstance(x, P))).lower(
          jax.random.PRNGKey(0)).compile()
  memory = compiled.memory_analysis()
  largest_kernel = 4 * 784 * 256
  assert memory.output_size_in_bytes < 3 * ((params - small) / 8 + small) + 256
  assert memory.temp_size_in_bytes < largest_kernel


@pytest.mark.slow
def test_a_run_saved_under_fsdp_resumes_on_other_meshes(tmp_path, monkeypatch):
  """Saved on 8 devices (FSDP), resumed on 2 (data parallel), then 1: the run that never moved.

  Not bit for bit: each mesh sums the gradients' shards in its own order,
  and Adam's division by the root of the second moment magnifies the
  float32 differences of small gradients to ~1e-6 (absolute) in 18 steps.
  """
  from dlcore import loop  # pylint: disable=import-outside-toplevel
  from dlcore.errors import Preempted  # pylint: disable=import-outside-toplevel
  straight = train_and_evaluate(_mlp_run(tmp_path, epochs=3, devices=1,
                                         workdir=str(tmp_path / "straight")))
  moved = _mlp_run(tmp_path, epochs=3, workdir=str(tmp_path / "moved"),
                   mesh=MeshConfig(data=1, fsdp=8))
  for stop, devices, mesh in ((4, None, moved.mesh),
                              (9, 2, MeshConfig(data=2))):
    with monkeypatch.context() as patch:
      patch.setattr(loop._Interruptions, "received",  # pylint: disable=protected-access
                    lambda self, done, stop=stop: "SIGTERM" if done == stop
                    else None)
      with pytest.raises(Preempted):
        train_and_evaluate(dataclasses.replace(
            moved, devices=devices, mesh=mesh, resume=stop != 4))
  resumed = train_and_evaluate(dataclasses.replace(
      moved, devices=1, mesh=MeshConfig(), resume=True))
  assert resumed["steps"] == straight["steps"] == 18
  assert_trees_close(saved_state(tmp_path / "moved"),
                     saved_state(tmp_path / "straight"), rtol=1e-5, atol=1e-5)
  records = [read_jsonl(tmp_path / w / METRICS_FILE)
             for w in ("moved", "straight")]
  assert [r["step"] for r in records[0]] == [r["step"] for r in records[1]]
  for a, b in zip(*records):
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)

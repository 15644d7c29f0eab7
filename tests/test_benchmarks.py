"""The benchmark harness runs end to end and its baselines compute what dlcore computes.

No timing is asserted: only that the files are written and parse, that the
FLOP counts are the hand-counted ones, and that each hand-written baseline, from
the same state, batch and key as dlcore, gives the same metrics and new
parameters (it splits its keys as dlcore does).
"""

import dataclasses
import operator
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks import __main__ as bench
from benchmarks import cpu_cores, generative, policy, qlearning, workloads
from benchmarks import cyclegan as cyclegan_workload
from benchmarks import segmentation as segmentation_workload
from benchmarks.workloads import in_dtype, torch_available
from dlcore.adversarial import create_gan_state, gan_step
from dlcore.cyclegan import (CycleGanConfig, NetworkSpec,
                             create_cyclegan_state, cyclegan_step)
from dlcore.errors import ConfigError
from dlcore.models import MLP, UNet
from dlcore.models.gan import create_gan_models
from dlcore.models.qnetworks import create_q_network
from dlcore.models.vae import VAE
from dlcore.rl.dqn import (DqnConfig, create_dqn_state, dqn_step,
                           make_dqn_program)
from dlcore.rl.ppo import PpoConfig, create_actor_critic, make_ppo_program
from dlcore.rl.ppo.config import iterations
from dlcore.segmentation import train_step as segmentation_step
from dlcore.state import create_train_state
from dlcore.vae import create_vae_state, vae_step

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_run_writes_json_markdown_and_plots(tmp_path):
  stem = tmp_path / "run"
  bench.main(["--workloads", "mlp", "--batch-size", "4", "--quick",
              "--peak-size", "128", "--no-torch",
              "--sweep-batch-sizes", "2,8", "--output", str(stem)])
  results = json.loads(stem.with_suffix(".json").read_text())
  assert results["machine"]["versions"]["jax"] == jax.__version__
  assert results["machine"]["device_count"] == jax.device_count()
  peak = results["peak"]
  assert (peak["size"], peak["measured"]["flops"]) == (128, 2 * 128 ** 3)
  (record,) = results["workloads"]
  assert (record["workload"], record["batch_size"]) == ("mlp", 4)
  assert set(record["sides"]) == {"dlcore", "baseline"}
  for side in record["sides"].values():
    assert side["timed_steps"] == 20  # --repeats 20 in 20 rounds by default.
  # Forward + backward of the MLP's three matmuls: 3 * 2 * B * sum(d_in*d_out).
  matmul_flops = 6 * 4 * (784 * 256 + 256 * 128 + 128 * 10)
  assert matmul_flops <= record["model_flops_per_step"] < 1.5 * matmul_flops
  (sweep,) = results["sweeps"]
  assert [p["batch_size"] for p in sweep["points"]] == [2, 8]
  markdown = stem.with_suffix(".md").read_text()
  assert "| mlp | 4 |" in markdown and "Batch-size sweep, mlp" in markdown
  for png in (stem.with_suffix(".png"), tmp_path / "run-sweep.png"):
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_bad_options_are_one_sentence_errors():
  with pytest.raises(ConfigError, match="unknown workload nope"):
    bench.run(bench.BenchConfig(workloads="mlp,nope"))
  with pytest.raises(ConfigError, match="at least 20"):
    bench.run(bench.BenchConfig(repeats=5))


def test_bfloat16_computes_in_bfloat16_from_float32_parameters():
  model = in_dtype(MLP(hidden_sizes=(8,), num_outputs=3), "bfloat16")
  x = jnp.ones((2, 5))
  variables = model.init(jax.random.PRNGKey(0), x)
  assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
  out = model.apply(variables, x)
  assert out.dtype == jnp.float32
  reference = MLP(hidden_sizes=(8,), num_outputs=3).apply(
      variables, x)
  np.testing.assert_allclose(out, reference, rtol=0.05, atol=0.05)
  assert not np.array_equal(out, reference)  # Rounded to bfloat16 inside.


def assert_trees_close(actual, expected, rtol=1e-6, atol=1e-6):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def assert_metrics_close(actual, expected):
  """Every metric of ``actual`` (the baseline's) equals dlcore's of that name."""
  for name, value in actual.items():
    np.testing.assert_allclose(value, expected[name], rtol=1e-6, atol=1e-6,
                               err_msg=name)


GAN_SHAPE = (8, 8, 1)  # The smallest DCGAN: seconds, not minutes, to compile.


@pytest.mark.parametrize("arch,loss", [
    ("mlp", "nonsaturating"),
    pytest.param("dcgan", "nonsaturating", marks=pytest.mark.slow),
    pytest.param("dcgan", "wgan-gp", marks=pytest.mark.slow)])
def test_gan_baseline_computes_dlcores_step(arch, loss):
  key, data_key, step_key = jax.random.split(jax.random.PRNGKey(0), 3)
  batch = {"image": jax.random.uniform(data_key, (4, *GAN_SHAPE), minval=-1.0),
           "label": jnp.zeros(4, jnp.int32)}
  state = create_gan_state(arch, GAN_SHAPE, key)
  states = generative.create_gan_states(*create_gan_models(arch, GAN_SHAPE),
                                      GAN_SHAPE, key)
  assert_trees_close(states.generator.params, state.generator.params, 0, 0)
  assert_trees_close(states.discriminator.params, state.discriminator.params,
                     0, 0)

  state, metrics = jax.jit(functools.partial(gan_step, loss=loss))(
      state, batch, step_key)
  step = generative.wgan_gp_step if loss == "wgan-gp" else generative.gan_step
  states, baseline_metrics = jax.jit(step)(states, batch, step_key)

  assert set(baseline_metrics) == set(metrics)
  assert_metrics_close(baseline_metrics, metrics)
  n_critic = 5 if loss == "wgan-gp" else 1
  assert int(states.discriminator.step) == n_critic
  assert int(states.generator.step) == 1
  assert_trees_close(states.generator.params, state.generator.params)
  assert_trees_close(states.generator.batch_stats, state.generator.batch_stats)
  assert_trees_close(states.discriminator.params, state.discriminator.params)
  assert_trees_close(states.discriminator.opt_state,
                     state.discriminator.opt_state)


def test_vae_baseline_computes_dlcores_step():
  key, data_key, step_key = jax.random.split(jax.random.PRNGKey(0), 3)
  shape = (8, 8, 1)
  batch = {"image": jax.random.uniform(data_key, (4, *shape))}
  state = create_vae_state(shape, key)
  baseline_state = generative.create_vae_state(VAE(shape), shape, key)
  state, metrics = jax.jit(vae_step)(state, batch, step_key)
  baseline_state, baseline_metrics = jax.jit(generative.vae_step)(
      baseline_state, batch, step_key)
  assert_metrics_close(baseline_metrics, metrics)
  assert_trees_close(baseline_state.params, state.params)
  assert_trees_close(baseline_state.opt_state, state.opt_state)


def test_segmentation_baseline_computes_dlcores_step():
  """A one-level U-Net (BatchNorm) on 8x8 images: two steps, same numbers."""
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((4, 8, 8, 1), dtype=np.float32),
           "label": rng.integers(0, 3, (4, 8, 8)).astype(np.int32)}
  key = jax.random.PRNGKey(0)
  model, tx = UNet(3, depth=1, width=4), optax.adam(1e-3)
  state = jax.jit(lambda k: create_train_state(model, tx, batch["image"][:1],
                                               k))(key)
  baseline_state = jax.jit(lambda k: workloads.create_train_state(
      model, tx, batch["image"], k))(key)
  for _ in range(2):
    state, metrics = jax.jit(segmentation_step)(state, batch, key)
    baseline_state, baseline_metrics = jax.jit(segmentation_workload.segmentation_step)(
        baseline_state, batch, key)
    assert_metrics_close(baseline_metrics, metrics)
  assert_trees_close(baseline_state.params, state.params)
  assert_trees_close(baseline_state.batch_stats, state.batch_stats)


def test_dqn_update_baseline_computes_dlcores_step():
  rng = np.random.default_rng(0)
  batch = {"obs": rng.normal(size=(8, 4)).astype(np.float32),
           "action": rng.integers(0, 2, 8).astype(np.int32),
           "reward": np.ones(8, np.float32),
           "next_obs": rng.normal(size=(8, 4)).astype(np.float32),
           "terminated": np.arange(8) % 3 == 0}
  key = jax.random.PRNGKey(0)
  state = create_dqn_state(DqnConfig(), (4,), 2, key)
  network = create_q_network((4,), 2)
  params = network.init(key, batch["obs"][:1])["params"]
  baseline_state = qlearning.DqnTrainState.create(
      apply_fn=network.apply, params=params, target_params=params,
      tx=state.tx)
  for _ in range(2):  # The second update bootstraps from a moved target.
    state, metrics = jax.jit(dqn_step)(state, batch, key)
    baseline_state, baseline_metrics = jax.jit(qlearning.dqn_update)(
        baseline_state, batch, key)
    assert_metrics_close(baseline_metrics, metrics)
  assert_trees_close(baseline_state.params, state.params)
  assert_trees_close(baseline_state.target_params, state.target_params)


def test_dqn_loop_baseline_follows_dlcores_run():
  """Four chunks from one key: the same episodes, losses, agent and buffer.

  A small run (300-transition buffer wrapping twice, learning from step
  200, a target copy every 5 updates) with ``DqnConfig``'s other defaults,
  which ``DqnArgs``'s defaults must equal.
  """
  names = {"num_envs": "num_envs", "total_steps": "total_timesteps",
           "buffer_size": "buffer_size", "batch_size": "batch_size",
           "optimizer.lr": "learning_rate", "gamma": "gamma",
           "target_update_every": "target_network_frequency",
           "epsilon_start": "start_e", "epsilon_end": "end_e",
           "exploration_fraction": "exploration_fraction",
           "learning_starts": "learning_starts",
           "train_every": "train_frequency", "env": "env_id"}
  defaults = DqnConfig()
  assert defaults.dueling is False and defaults.double is False
  assert (defaults.loss, defaults.tau, defaults.optimizer.clip_norm) == (
      "mse", 1.0, 0.0)
  assert qlearning.DqnArgs() == qlearning.DqnArgs(**{
      args_name: operator.attrgetter(name)(defaults)
      for name, args_name in names.items()})

  config = dataclasses.replace(
      defaults, total_steps=2000, buffer_size=300, batch_size=16,
      learning_starts=200, chunk_steps=200, target_update_every=50)
  args = qlearning.DqnArgs(steps_per_chunk=config.chunk_steps, **{
      args_name: operator.attrgetter(name)(config)
      for name, args_name in names.items()})
  program = make_dqn_program(config)
  init, chunk = qlearning.make_dqn_loop(args, create_q_network((4,), 2))
  key = jax.random.PRNGKey(7)
  runner, baseline_runner = program.init(key), jax.jit(init)(key)
  dlcore_chunk = jax.jit(lambda r: program.chunk(r, 200 // config.num_envs))
  baseline_chunk = jax.jit(chunk)
  for updates in (1, 20, 20, 20):
    runner, metrics = dlcore_chunk(runner)
    baseline_runner, baseline_metrics = baseline_chunk(baseline_runner)
    assert int(baseline_metrics["updates"]) == updates
    assert_metrics_close(baseline_metrics, metrics)
  agent = baseline_runner.train_state
  assert int(agent.step) == int(runner.agent.step) == 61
  assert_trees_close(agent.params, runner.agent.params)
  assert_trees_close(agent.target_params, runner.agent.target_params)
  assert_trees_close(baseline_runner.buffer, runner.buffer.storage, 0, 0)
  assert_trees_close(baseline_runner.env_state, runner.env_state, 0, 0)


def test_ppo_loop_baseline_follows_dlcores_run():
  """Two chunks from one key: the same episodes, loss terms, agent and envs.

  A small run (4 environments, 16-step rollouts, 2 epochs of 2 minibatches,
  2 iterations per chunk) with ``PpoConfig``'s other defaults, which
  ``PpoArgs``'s defaults must equal.
  """
  names = {"env": "env_name", "optimizer.lr": "lr", "num_envs": "num_envs",
           "num_steps": "num_steps", "total_steps": "total_timesteps",
           "update_epochs": "update_epochs",
           "num_minibatches": "num_minibatches", "gamma": "gamma",
           "gae_lambda": "gae_lambda", "clip_eps": "clip_eps",
           "ent_coef": "ent_coef", "vf_coef": "vf_coef",
           "optimizer.clip_norm": "max_grad_norm"}
  defaults = PpoConfig()
  assert (defaults.optimizer.name, defaults.optimizer.schedule,
          defaults.clip_value, defaults.reward_scale) == (
              "adam", "linear", True, 1.0)
  assert policy.PpoArgs() == policy.PpoArgs(**{
      args_name: operator.attrgetter(name)(defaults)
      for name, args_name in names.items()})

  config = dataclasses.replace(defaults, num_steps=16, total_steps=256,
                               update_epochs=2, num_minibatches=2,
                               chunk_steps=128)
  args = policy.PpoArgs(updates_per_chunk=2, **{
      args_name: operator.attrgetter(name)(config)
      for name, args_name in names.items()})
  program = make_ppo_program(config)
  init, chunk = policy.make_ppo_loop(
      args, create_actor_critic(config, 2, continuous=False))
  key = jax.random.PRNGKey(3)
  runner, baseline_runner = program.init(key), jax.jit(init)(key)
  per_chunk, chunks = iterations(config)
  dlcore_chunk = jax.jit(lambda r: program.chunk(r, per_chunk))
  baseline_chunk = jax.jit(chunk)
  for _ in range(chunks):
    runner, metrics = dlcore_chunk(runner)
    baseline_runner, baseline_metrics = baseline_chunk(baseline_runner)
    assert int(baseline_metrics["episodes"]) > 0
    assert_metrics_close(baseline_metrics, metrics)
  agent = baseline_runner.train_state
  assert int(agent.step) == int(runner.agent.step) == 16
  assert_trees_close(agent.params, runner.agent.params)
  assert_trees_close(baseline_runner.env_state, runner.env_state, 0, 0)


@pytest.mark.skipif(not torch_available(), reason="needs torch")
def test_torch_mlp_gan_is_dlcores_and_steps():
  """The PyTorch MLP GAN, given the Flax parameters, computes the same functions."""
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks import torch_models  # pylint: disable=import-outside-toplevel

  shape = (28, 28, 1)
  state = create_gan_state("mlp", shape, jax.random.PRNGKey(0))
  generator = torch_models.MLPGenerator(shape)
  discriminator = torch_models.MLPDiscriminator(28 * 28)

  def load(module, params):
    layers = [p for p in module.modules() if isinstance(p, torch.nn.Linear)]
    dense = jax.tree.leaves(params, is_leaf=lambda x: "kernel" in x)
    assert len(layers) == len(dense)
    with torch.no_grad():
      for layer, p in zip(layers, dense):
        layer.weight.copy_(torch.tensor(np.asarray(p["kernel"]).T))
        layer.bias.copy_(torch.tensor(np.asarray(p["bias"])))

  load(generator, state.generator.params)
  load(discriminator, state.discriminator.params)
  z = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)
  images = state.generator.apply_fn({"params": state.generator.params}, z)
  logits = state.discriminator.apply_fn(
      {"params": state.discriminator.params}, images)
  with torch.no_grad():
    torch_images = generator(torch.from_numpy(z))
    torch_logits = discriminator(torch_images)
  np.testing.assert_allclose(torch_images.numpy(), images, atol=1e-5)
  np.testing.assert_allclose(torch_logits.numpy(), logits, atol=1e-5)

  batch = {"image": np.zeros((4, *shape), np.float32)}
  step = torch_models.make_gan_step(batch)
  step()  # One D and one G step run.


def test_cpu_cores_times_one_device_and_all_cores():
  results = cpu_cores.main(["--workloads", "mlp", "--batch-size", "4",
                            "--steps", "3"])
  sides = results["mlp"]
  assert set(sides) == {"one device", "all cores"} | (
      {"torch"} if torch_available() else set())
  for stats in sides.values():
    assert stats["timed_steps"] == 3
  with pytest.raises(ConfigError, match="supervised workloads only, not vae"):
    cpu_cores.main(["--workloads", "mlp,vae"])


def test_cyclegan_baseline_computes_dlcores_step():
  """Two steps from one key, pools filling and swapping, on both sides."""
  spec, shape = NetworkSpec(4, 1, 1, 4, 1), (8, 8, 3)
  state = create_cyclegan_state(spec, shape, jax.random.PRNGKey(0),
                                pool_size=3)
  states = cyclegan_workload.create_cyclegan_states(
      spec.generator(3, jnp.float32), spec.discriminator(jnp.float32),
      (state.generator_ab.params, state.generator_ba.params,
       state.discriminator_a.params, state.discriminator_b.params), shape,
      pool_size=3)
  dlcore_step = jax.jit(cyclegan_step)
  baseline_step = jax.jit(cyclegan_workload.cyclegan_step)
  for i in range(2):
    batch = {name: jax.random.uniform(jax.random.PRNGKey(10 * i + j),
                                      (4, *shape), minval=-1.0)
             for j, name in enumerate(("image_a", "image_b"))}
    state, metrics = dlcore_step(state, batch, jax.random.PRNGKey(100 + i))
    states, baseline_metrics = baseline_step(states, batch,
                                             jax.random.PRNGKey(100 + i))
    assert set(baseline_metrics) == set(metrics)
    assert_metrics_close(baseline_metrics, metrics)
  for ours, theirs in (("generator_ab", "g"), ("generator_ba", "f"),
                       ("discriminator_a", "d_a"), ("discriminator_b", "d_b")):
    assert_trees_close(getattr(states, theirs).params,
                       getattr(state, ours).params, rtol=1e-5, atol=1e-6)
    assert_trees_close(getattr(states, theirs).opt_state,
                       getattr(state, ours).opt_state, rtol=1e-5, atol=1e-6)
  for domain in ("a", "b"):
    pool = getattr(state, f"pool_{domain}")
    assert int(getattr(states, f"count_{domain}")) == int(pool.count) == 3
    np.testing.assert_allclose(getattr(states, f"pool_{domain}"), pool.images,
                               rtol=1e-5, atol=1e-6)
  assert cyclegan_workload.SPEC == CycleGanConfig().spec

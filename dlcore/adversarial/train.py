"""Training a GAN or a VAE: ``train_gan(config, workdir)``, ``train_vae(config, workdir)``.

Both run ``dlcore.loop.train_loop`` (progress, metrics, NaN guard,
checkpoints, exact resume) and write into ``workdir``: ``metrics.jsonl``
(one record per ``--sample-every`` steps), ``samples_XXXXXX.png`` at each
record and ``samples_final.png``, ``curves.png``, ``checkpoints/`` and
``summary.json``. The GAN summary holds the final Fréchet classifier
distance ``fcd`` (and ``fcd_initial``, the same generator before training)
and, for conditional GANs, ``conditional_accuracy``; the classifier behind
them is trained once into ``--classifier-dir`` (default
``workdir/classifier``). The VAE summary holds the test-set ELBO.

Training is data-parallel over ``config.devices`` devices (default: all)
by ``config.parallel`` (see ``dlcore.parallel``): each global batch is split
evenly over the devices and the steps draw each device's rows of the noise
one device would draw, so the run computes what one device would. Only
process 0 writes files.
"""

import dataclasses
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dlcore import io, parallel, plots
from dlcore.adversarial.fcd import frechet_distance, load_or_train_judge
from dlcore.adversarial.losses import LOSSES
from dlcore.adversarial.state import GANState, create_gan_state, sample
from dlcore.adversarial.steps import gan_step, loss_spec
from dlcore.adversarial.vae import create_vae_state, vae_eval_step, vae_step
from dlcore.config import check_positive, field, to_dict
from dlcore.data import (Dataset, Split, eval_batches, load_dataset, prefetch,
                         train_batches)
from dlcore.errors import ConfigError
from dlcore.loop import train_loop
from dlcore.models.gan import ARCHITECTURES, create_gan_models
from dlcore.models.vae import LIKELIHOODS
from dlcore.state import count_params
from dlcore.supervised.steps import mean_of_sums

GRID_SIZE = 100  # Samples per PNG grid: 10 x 10.


@dataclasses.dataclass(frozen=True)
class GanConfig(parallel.ParallelConfig):
  """Options of ``experiments/gan.py`` (defaults: a DCGAN on digits)."""
  dataset: str = field("digits", "digits (embedded), a TFDS name such as "
                       "mnist, or an .npz file (x_train, x_test; y_train and "
                       "y_test optional unless --conditional)")
  data_dir: str | None = field(None, "TFDS data directory (default "
                               "~/tensorflow_datasets)")
  arch: str = field("dcgan", "generator and discriminator: dcgan (8x8, "
                    "28x28 or 32x32 images) or mlp (any size)",
                    choices=ARCHITECTURES)
  loss: str = field("nonsaturating", "adversarial loss: minimax, "
                    "nonsaturating, wgan-gp or hinge", choices=tuple(LOSSES))
  conditional: bool = field(False, "condition both networks on the class label")
  steps: int = field(3000, "generator updates")
  batch_size: int = field(64, "real and generated examples per update "
                          "(split evenly over the devices)")
  latent_dim: int = field(64, "noise dimensions")
  g_lr: float = field(2e-4, "generator Adam learning rate")
  d_lr: float = field(2e-4, "discriminator Adam learning rate")
  beta1: float = field(0.5, "Adam beta1 of both networks")
  n_critic: int = field(0, "discriminator updates per generator update "
                        "(0: 5 for wgan-gp, 1 otherwise)")
  gp_weight: float = field(10.0, "gradient-penalty weight lambda (wgan-gp)")
  sample_every: int = field(500, "steps between sample grids, metrics "
                            "records and checkpoints")
  classifier_epochs: int = field(20, "epochs of the FCD classifier")
  classifier_dir: str | None = field(None, "where the FCD classifier is "
                                     "trained once and cached (default "
                                     "WORKDIR/classifier)")
  fcd_samples: int = field(2000, "at most this many test and generated "
                           "images for the FCD")
  seed: int = field(0, "seed of initialisation, shuffling and noise")
  workdir: str = field("runs/gan", "where metrics, samples and checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")


@dataclasses.dataclass(frozen=True)
class VaeConfig(parallel.ParallelConfig):
  """Options of ``experiments/vae.py`` (defaults: an MLP VAE on digits)."""
  dataset: str = field("digits", "digits (embedded), a TFDS name such as "
                       "mnist, or an .npz file (x_train, x_test)")
  data_dir: str | None = field(None, "TFDS data directory (default "
                               "~/tensorflow_datasets)")
  likelihood: str = field("bernoulli", "pixel likelihood p(x | z): bernoulli "
                          "or gaussian (learned scale)",
                          choices=LIKELIHOODS)
  latent_dim: int = field(16, "latent dimensions")
  steps: int = field(5000, "gradient steps")
  batch_size: int = field(64, "global training batch size (split evenly "
                          "over the devices)")
  lr: float = field(1e-3, "Adam learning rate")
  sample_every: int = field(500, "steps between sample grids, test ELBO "
                            "records and checkpoints")
  eval_batch_size: int = field(500, "test batch size (the last batch is "
                               "padded and masked)")
  seed: int = field(0, "seed of initialisation, shuffling and noise")
  workdir: str = field("runs/vae", "where metrics, samples and checkpoints go")
  resume: bool = field(False, "continue from the latest checkpoint in workdir")


def _gan_batches(split: Split, batch_size: int, seed: int, start: int):
  """Training batches with images rescaled from [0, 1] to the generator's [-1, 1]."""
  for batch in train_batches(split, batch_size, seed, start):
    yield {"image": batch["image"] * 2.0 - 1.0, "label": batch["label"]}


def _sharded(batches, mesh):
  """``batches`` (numpy, global) split over ``mesh`` and prefetched."""
  return prefetch((parallel.shard_batch(b, mesh) for b in batches),
                  sharding=parallel.batch_sharding(mesh))


def _check_gan(config: GanConfig, data: Dataset) -> None:
  loss_spec(config.loss)
  check_positive(config, "steps", "batch_size", "latent_dim",
                 "sample_every", "classifier_epochs", "fcd_samples")
  if config.n_critic < 0:
    raise ConfigError(f"--n-critic must be 0 (the loss's default) or more, "
                      f"got {config.n_critic}")
  if config.conditional and data.num_classes == 0:
    raise ConfigError(
        f"dataset {data.name!r} has no labels, so --conditional cannot be "
        "used; drop --conditional or add y_train and y_test to the file")
  create_gan_models(config.arch, data.image_shape)  # Unknown arch or size.


class _GanReporter:
  """Samples, FCD and conditional accuracy of a generator, for each record."""

  def __init__(self, config: GanConfig, data: Dataset, workdir: pathlib.Path):
    self.workdir = workdir
    self.conditional = config.conditional
    key = jax.random.PRNGKey(config.seed + 1)
    count = min(config.fcd_samples, len(data.test))
    self.judge = None
    if data.num_classes:
      self.judge = load_or_train_judge(
          config.dataset, data.image_shape, data.num_classes,
          config.classifier_dir or workdir / "classifier",
          data_dir=config.data_dir, epochs=config.classifier_epochs,
          seed=config.seed)
      self.real_features = self.judge.features(data.test.images[:count])
    classes = max(data.num_classes, 1)
    self.z = jax.random.normal(key, (max(count, GRID_SIZE), config.latent_dim))
    self.labels = jnp.arange(len(self.z)) % classes
    self.count = count
    self.sample = jax.jit(sample)

  def images(self, state: GANState, count: int) -> np.ndarray:
    """``count`` generated images in [0, 1] (labels cycle through the classes)."""
    labels = self.labels[:count] if self.conditional else None
    images = parallel.to_host(self.sample(state, self.z[:count], labels))
    return (images + 1.0) / 2.0

  def quality(self, state: GANState) -> dict[str, float]:
    if self.judge is None:
      return {}
    fake = self.images(state, self.count)
    metrics = {"fcd": frechet_distance(self.real_features,
                                       self.judge.features(fake))}
    if self.conditional:
      metrics["conditional_accuracy"] = self.judge.accuracy(
          fake, self.labels[:self.count])
    return metrics

  def train_images_fcd(self, data: Dataset) -> float:
    """The FCD of real training images: the floor a perfect generator reaches."""
    return frechet_distance(self.real_features,
                            self.judge.features(data.train.images[:self.count]))

  def __call__(self, step: int, state: GANState) -> dict[str, float]:
    if parallel.is_main_process():
      plots.image_grid(self.images(state, GRID_SIZE),
                       self.workdir / f"samples_{step:06d}.png")
    return self.quality(state)


def train_gan(config: GanConfig, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains a GAN as ``config`` says; returns the summary (also ``summary.json``)."""
  data = load_dataset(config.dataset, config.data_dir, labels_required=False)
  _check_gan(config, data)
  mesh = parallel.data_mesh(config.devices)
  parallel.check_divisible(config.batch_size, mesh)
  workdir = io.prepare_workdir(workdir)
  init_key, loop_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = parallel.replicate(create_gan_state(
      config.arch, data.image_shape, init_key, batch_size=config.batch_size,
      num_classes=data.num_classes if config.conditional else 0,
      latent_dim=config.latent_dim, g_lr=config.g_lr, d_lr=config.d_lr,
      beta1=config.beta1), mesh)
  reporter = _GanReporter(config, data, workdir)
  initial = reporter.quality(state)
  step_fn = parallel.wrap(
      gan_step, mesh, config.parallel, donate_argnums=0, loss=config.loss,
      n_critic=config.n_critic or None, gp_weight=config.gp_weight)
  state, records = train_loop(
      state, step_fn,
      lambda start: _sharded(_gan_batches(data.train, config.batch_size,
                                          config.seed, start), mesh),
      key=loop_key, num_steps=config.steps, report_every=config.sample_every,
      workdir=workdir, resume=config.resume, report=reporter,
      desc=f"{config.arch} {config.loss} GAN on {data.name}, "
      f"{mesh.size} device(s)")
  final_images = reporter.images(state, GRID_SIZE)
  panels = {"losses": ["train_d_loss", "train_g_loss"],
            "discriminator": ["train_d_real", "train_d_fake"]}
  if reporter.judge is not None:
    panels["Fréchet classifier distance"] = ["fcd"]
  if config.conditional:
    panels["classifier accuracy on samples"] = ["conditional_accuracy"]
  final = records[-1]
  summary = {
      "fcd": final.get("fcd"), "fcd_initial": initial.get("fcd"),
      "train_seconds": sum(r["seconds"] for r in records),
      "steps": final["step"],
      "generator_params": count_params(state.generator.params),
      "discriminator_params": count_params(state.discriminator.params),
      "num_devices": mesh.size, "num_processes": jax.process_count(),
      "config": to_dict(config)}
  if config.conditional:
    summary["conditional_accuracy"] = final["conditional_accuracy"]
    summary["conditional_accuracy_initial"] = initial["conditional_accuracy"]
  if reporter.judge is not None:
    summary["classifier_test_accuracy"] = reporter.judge.test_accuracy
    summary["fcd_train_images"] = reporter.train_images_fcd(data)
  if parallel.is_main_process():
    plots.image_grid(final_images, workdir / "samples_final.png")
    plots.plot_curves(records, workdir / "curves.png", x="step",
                      panels=panels)
    io.write_json(workdir / "summary.json", summary)
  return summary


def train_vae(config: VaeConfig, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains a VAE as ``config`` says; returns the summary (also ``summary.json``)."""
  check_positive(config, "steps", "batch_size", "latent_dim", "sample_every",
                 "eval_batch_size")
  data = load_dataset(config.dataset, config.data_dir, labels_required=False)
  mesh = parallel.data_mesh(config.devices)
  parallel.check_divisible(config.batch_size, mesh)
  workdir = io.prepare_workdir(workdir)
  init_key, loop_key, eval_key, prior_key = jax.random.split(
      jax.random.PRNGKey(config.seed), 4)
  state = parallel.replicate(create_vae_state(
      data.image_shape, init_key, batch_size=config.batch_size,
      latent_dim=config.latent_dim, likelihood=config.likelihood,
      lr=config.lr), mesh)
  eval_fn = jax.jit(vae_eval_step)
  prior_z = jax.random.normal(prior_key, (GRID_SIZE, config.latent_dim))
  generate = jax.jit(lambda state, z: state.apply_fn(
      {"params": state.params}, z, method="generate"))

  def report(step: int, state) -> dict[str, float]:
    if parallel.is_main_process():
      plots.image_grid(parallel.to_host(generate(state, prior_z)),
                       workdir / f"samples_{step:06d}.png")
    sums = None
    for i, batch in enumerate(eval_batches(data.test, config.eval_batch_size)):
      out = eval_fn(state, batch, jax.random.fold_in(eval_key, i))
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    return {f"test_{k}": v
            for k, v in mean_of_sums(parallel.to_host(sums)).items()}

  state, records = train_loop(
      state, parallel.wrap(vae_step, mesh, config.parallel, donate_argnums=0),
      lambda start: _sharded(train_batches(data.train, config.batch_size,
                                           config.seed, start), mesh),
      key=loop_key, num_steps=config.steps, report_every=config.sample_every,
      workdir=workdir, resume=config.resume, report=report,
      desc=f"{config.likelihood} VAE on {data.name}, {mesh.size} device(s)")
  if parallel.is_main_process():
    plots.image_grid(parallel.to_host(generate(state, prior_z)),
                     workdir / "samples_final.png")
    plots.plot_curves(records, workdir / "curves.png", x="step", panels={
        "ELBO (nats per image)": ["train_elbo", "test_elbo"],
        "terms": ["train_reconstruction", "train_kl", "test_kl"]})
  final = records[-1]
  summary = {"test_elbo": final["test_elbo"],
             "test_reconstruction": final["test_reconstruction"],
             "test_kl": final["test_kl"],
             "train_seconds": sum(r["seconds"] for r in records),
             "steps": final["step"], "num_params": count_params(state.params),
             "num_devices": mesh.size, "num_processes": jax.process_count(),
             "config": to_dict(config)}
  if parallel.is_main_process():
    io.write_json(workdir / "summary.json", summary)
  return summary

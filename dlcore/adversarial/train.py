"""Training a GAN and judging its samples: ``train_gan(config, workdir)``.

Writes into ``workdir`` what ``dlcore.loop`` writes (``metrics.jsonl``,
``tensorboard/``, ``model.txt``, ``samples_XXXXXX.png`` at the sample
cadence, ``checkpoints/``), plus ``curves.png`` and ``summary.json``: the
final Fréchet classifier distance ``fcd`` (and ``fcd_initial``, the same
generator before training, evaluated at step 0) and, for conditional GANs,
``conditional_accuracy``. The classifier behind them is trained once into
``classifier_dir`` (default ``workdir/classifier``).
"""

import dataclasses
import pathlib
from typing import Any

import jax
import numpy as np

from dlcore import experiment, optim
from dlcore.adversarial.fcd import GeneratorQuality, load_or_train_judge
from dlcore.adversarial.losses import LOSSES
from dlcore.adversarial.objective import gan_objective
from dlcore.adversarial.steps import loss_spec
from dlcore.config import field
from dlcore.data import Dataset, load_dataset
from dlcore.errors import ConfigError
from dlcore.models import check_image_shape
from dlcore.models.gan import ARCHITECTURES, create_gan_models

DCGAN_OPTIMIZER = optim.OptimizerConfig(name="adam", lr=2e-4, b1=0.5)


@dataclasses.dataclass(frozen=True)
class GanConfig(experiment.ExperimentConfig):
  """Options of ``experiments/gan.py`` (defaults: a DCGAN on digits)."""
  dataset: str = field("digits", "digits (embedded), a TFDS name such as "
                       "mnist, or an .npz file (x_train, x_test; y_train and "
                       "y_test optional when unconditional)")
  arch: str = field("dcgan", "generator and discriminator: dcgan (8x8, "
                    "28x28 or 32x32 images) or mlp (any size)",
                    choices=ARCHITECTURES)
  loss: str = field("nonsaturating", "adversarial loss",
                    choices=tuple(LOSSES))
  conditional: bool = field(False, "condition both networks on the class label")
  steps: int = field(3000, "generator updates", valid="[1, inf)")
  latent_dim: int = field(64, "noise dimensions", valid="[1, inf)")
  g_optimizer: optim.OptimizerConfig = field(DCGAN_OPTIMIZER,
                                             "the generator's optimizer")
  d_optimizer: optim.OptimizerConfig = field(DCGAN_OPTIMIZER,
                                             "the discriminator's optimizer")
  n_critic: int = field(0, "discriminator updates per generator update "
                        "(0: 5 for wgan-gp, 1 otherwise)", valid="[0, inf)")
  gp_weight: float = field(10.0, "gradient-penalty weight lambda (wgan-gp)",
                           valid="[0, inf)")
  classifier_epochs: int = field(20, "epochs of the FCD classifier",
                                 valid="[1, inf)")
  classifier_dir: str | None = field(None, "where the FCD classifier is "
                                     "trained once and cached (default "
                                     "WORKDIR/classifier)")
  fcd_samples: int = field(2000, "at most this many test and generated "
                           "images for the FCD", valid="[2, inf)")
  workdir: str = field("runs/gan", "where metrics, samples and checkpoints go")


def _check_options(config: GanConfig) -> None:
  """Every option on its own, before any data is loaded."""
  loss_spec(config.loss)
  experiment.check_options(config)
  for name in ("g_optimizer", "d_optimizer"):
    optim.check_optimizer(getattr(config, name), total_steps=config.steps,
                          prefix=name)


def _check(config: GanConfig, data: Dataset) -> None:
  """The options against the data, before the FCD classifier is trained."""
  if config.conditional and data.num_classes == 0:
    raise ConfigError(
        f"dataset {data.name!r} has no labels, so option conditional cannot "
        "be used; drop it or add y_train and y_test to the file")
  create_gan_models(config.arch, data.image_shape)  # Unknown arch or size.
  if data.num_classes:
    check_image_shape("cnn", data.image_shape, who="the FCD classifier (cnn)")


def _to_generator_range(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Images rescaled from [0, 1] to the generator's [-1, 1]."""
  return {**batch, "image": batch["image"] * 2.0 - 1.0}


def train_gan(config: GanConfig,
              workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains a GAN as ``config`` says; returns the summary (also ``summary.json``).

  ``workdir``, when given, replaces ``config.workdir``.
  """
  if workdir is not None:
    config = dataclasses.replace(config, workdir=str(workdir))
  _check_options(config)
  data = load_dataset(config.dataset, config.data_dir, labels_required=False)
  _check(config, data)
  experiment.check(config, data)  # Before the judge writes anything.
  quality = None
  if data.num_classes:
    quality = GeneratorQuality(
        load_or_train_judge(
            config.dataset, data.image_shape, data.num_classes,
            config.classifier_dir or pathlib.Path(config.workdir) / "classifier",
            data_dir=config.data_dir, epochs=config.classifier_epochs,
            seed=config.seed),
        data.test.images[:config.fcd_samples], config.latent_dim,
        key=jax.random.PRNGKey(config.seed + 1))
  objective = gan_objective(
      config.arch, data.image_shape,
      g_tx=optim.create_optimizer(config.g_optimizer, config.steps),
      d_tx=optim.create_optimizer(config.d_optimizer, config.steps),
      num_classes=data.num_classes if config.conditional else 0,
      latent_dim=config.latent_dim, loss=config.loss,
      n_critic=config.n_critic or None, gp_weight=config.gp_weight,
      dtype=experiment.compute_dtype(config))
  _, history = experiment.fit(
      objective, data, config, num_steps=config.steps,
      prepare=_to_generator_range, evaluate_fn=quality,
      evaluate_first=quality is not None,
      desc=f"{config.arch} {config.loss} GAN on {data.name}")
  panels = {"losses": ["train_d_loss", "train_g_loss"],
            "discriminator": ["train_d_real", "train_d_fake"]}
  summary: dict[str, Any] = {}
  if quality is not None:  # fcd, and conditional_accuracy when conditional.
    first, last = history.records[0], history.last
    for name in set(first) - {"step"}:
      summary.update({name: last[name], f"{name}_initial": first[name]})
      panels[name] = [name]
    summary.update(classifier_test_accuracy=quality.judge.test_accuracy,
                   fcd_train_images=quality.train_images_fcd(data.train))
  return experiment.finish(config, history, summary, panels=panels)

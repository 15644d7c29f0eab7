"""Training a GAN and judging its samples: ``train_and_evaluate(config)``.

Writes into ``config.workdir`` what ``dlcore.loop`` writes
(``metrics.jsonl``, ``tensorboard/``, ``model.txt``, ``samples_XXXXXX.png``
at the sample cadence, ``checkpoints/``), plus ``curves.png`` and
``summary.json``: the final Fréchet classifier distance ``fcd`` (and
``fcd_initial``, the same generator before training, evaluated at step 0)
and, for conditional GANs, ``conditional_accuracy``. The classifier behind
them is trained once per dataset into ``classifier_dir`` (default
``workdir/classifier``), in a subdirectory named by the dataset and a hash
of its arrays.
"""

import pathlib
from typing import Any

import jax
import numpy as np

from dlcore import experiment
from dlcore.adversarial.config import GanConfig
from dlcore.adversarial.fcd import GeneratorQuality, load_or_train_judge
from dlcore.adversarial.objective import gan_objective
from dlcore.config import validate
from dlcore.data import Dataset, load_dataset
from dlcore.errors import ConfigError
from dlcore.models.gan import create_gan_models
from dlcore.supervised.config import ClassifyConfig
from dlcore.supervised.train import check_model_fits


def _check(config: GanConfig, data: Dataset) -> None:
  """The options against the data, before the FCD classifier is trained."""
  if config.conditional and data.num_classes == 0:
    raise ConfigError(
        f"dataset {data.name!r} has no labels, so option conditional cannot "
        "be used; drop it or add y_train and y_test to the file")
  try:
    create_gan_models(config.arch, data.image_shape)
  except ValueError as e:
    raise ConfigError(f"option arch {config.arch}: {e}") from None
  if data.num_classes:
    check_model_fits(ClassifyConfig(model="cnn"), data.image_shape)


def _to_generator_range(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Images rescaled from [0, 1] to the generator's [-1, 1]."""
  return {**batch, "image": batch["image"] * 2.0 - 1.0}


def train_and_evaluate(config: GanConfig) -> dict[str, Any]:
  """Trains a GAN as ``config`` says; returns the summary (also ``summary.json``)."""
  validate(config)
  data = load_dataset(config.dataset, config.data_dir, labels_required=False)
  _check(config, data)
  plan = experiment.plan(
      config, num_steps=config.steps, batch_size=config.batch_size,
      num_train=len(data.train),
      optimizers={name: (getattr(config, name), None, config.steps)
                  for name in ("g_optimizer", "d_optimizer")})
  quality = None
  if data.num_classes:
    quality = GeneratorQuality(
        load_or_train_judge(
            config.dataset, data,
            config.classifier_dir or pathlib.Path(config.workdir) / "classifier",
            data_dir=config.data_dir, epochs=config.classifier_epochs,
            seed=config.seed),
        data.test.images[:config.fcd_samples], config.latent_dim,
        key=jax.random.PRNGKey(config.seed + 1))
  objective = gan_objective(
      config.arch, data.image_shape,
      g_tx=plan.optimizers["g_optimizer"], d_tx=plan.optimizers["d_optimizer"],
      num_classes=data.num_classes if config.conditional else 0,
      latent_dim=config.latent_dim, loss=config.loss,
      n_critic=config.n_critic or None, gp_weight=config.gp_weight,
      dtype=experiment.compute_dtype(config))
  stream = experiment.DatasetStream.of(data, config,
                                       prepare=_to_generator_range)
  _, history = experiment.fit(
      objective, stream, config, plan, evaluate_fn=quality,
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

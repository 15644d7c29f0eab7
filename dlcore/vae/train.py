"""Training a VAE and reporting its test ELBO: ``train_vae(config, workdir)``.

Writes into ``workdir`` what ``dlcore.loop`` writes (``metrics.jsonl`` with
the test ELBO at the eval cadence, ``tensorboard/``, ``model.txt``,
``samples_XXXXXX.png`` decoded from the prior at the sample cadence,
``checkpoints/``), plus ``curves.png`` and ``summary.json``.
"""

import dataclasses
import pathlib
from typing import Any

from dlcore import experiment, optim
from dlcore.config import field
from dlcore.data import load_dataset
from dlcore.models.vae import LIKELIHOODS
from dlcore.vae.steps import vae_objective


@dataclasses.dataclass(frozen=True)
class VaeConfig(experiment.ExperimentConfig):
  """Options of ``experiments/vae.py`` (defaults: an MLP VAE on digits)."""
  dataset: str = field("digits", "digits (embedded), a TFDS name such as "
                       "mnist, or an .npz file (x_train, x_test)")
  likelihood: str = field("bernoulli", "pixel likelihood p(x | z): bernoulli "
                          "or gaussian (learned scale)", choices=LIKELIHOODS)
  latent_dim: int = field(16, "latent dimensions", valid="[1, inf)")
  steps: int = field(5000, "gradient steps", valid="[1, inf)")
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=1e-3), "the optimizer")
  eval_batch_size: int = field(500, "test batch size (the last batch is "
                               "padded and masked)", valid="[1, inf)")
  workdir: str = field("runs/vae", "where metrics, samples and checkpoints go")


def train_vae(config: VaeConfig,
              workdir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains a VAE as ``config`` says; returns the summary (also ``summary.json``).

  ``workdir``, when given, replaces ``config.workdir``.
  """
  if workdir is not None:
    config = dataclasses.replace(config, workdir=str(workdir))
  experiment.check_options(config)
  data = load_dataset(config.dataset, config.data_dir, labels_required=False)
  objective = vae_objective(
      data.image_shape, optim.create_optimizer(config.optimizer, config.steps),
      latent_dim=config.latent_dim, likelihood=config.likelihood,
      dtype=experiment.compute_dtype(config))
  _, history = experiment.fit(
      objective, data, config, num_steps=config.steps,
      desc=f"{config.likelihood} VAE on {data.name}")
  last = history.last
  return experiment.finish(config, history, {
      "test_elbo": last["test_elbo"],
      "test_reconstruction": last["test_reconstruction"],
      "test_kl": last["test_kl"]}, panels={
          "ELBO (nats per image)": ["train_elbo", "test_elbo"],
          "terms": ["train_reconstruction", "train_kl", "test_kl"]})

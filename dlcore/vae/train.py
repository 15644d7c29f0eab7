"""Training a VAE and reporting its test ELBO: ``train_and_evaluate(config)``.

Writes into ``config.workdir`` what ``dlcore.loop`` writes
(``metrics.jsonl`` with the test ELBO at the eval cadence, ``tensorboard/``,
``model.txt``, ``samples_XXXXXX.png`` decoded from the prior at the sample
cadence, ``checkpoints/``), plus ``curves.png`` and ``summary.json``.
"""

from typing import Any

from dlcore import experiment
from dlcore.config import validate
from dlcore.data import load_dataset
from dlcore.vae.config import VaeConfig
from dlcore.vae.objective import vae_objective


def train_and_evaluate(config: VaeConfig) -> dict[str, Any]:
  """Trains a VAE as ``config`` says; returns the summary (also ``summary.json``)."""
  validate(config)
  data = load_dataset(config.dataset, config.data_dir, labels_required=False)
  plan = experiment.plan(
      config, num_steps=config.steps, batch_size=config.batch_size,
      num_train=len(data.train),
      optimizers={"optimizer": (config.optimizer, None, config.steps)})
  objective = vae_objective(
      data.image_shape, plan.optimizers["optimizer"],
      latent_dim=config.latent_dim, likelihood=config.likelihood,
      dtype=experiment.compute_dtype(config))
  _, history = experiment.fit(
      objective, experiment.DatasetStream.of(data, config), config, plan,
      desc=f"{config.likelihood} VAE on {data.name}")
  last = history.last
  return experiment.finish(config, history, {
      "test_elbo": last["test_elbo"],
      "test_reconstruction": last["test_reconstruction"],
      "test_kl": last["test_kl"]}, panels={
          "ELBO (nats per image)": ["train_elbo", "test_elbo"],
          "terms": ["train_reconstruction", "train_kl", "test_kl"]})

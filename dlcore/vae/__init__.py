"""The variational autoencoder: its ELBO step, objective and experiment run.

  dlcore.vae.steps  ``vae_step``, ``vae_eval_step``, ``create_vae_state``, ``vae_objective``.
  dlcore.vae.train  ``VaeConfig`` and ``train_vae(config, workdir)``.
"""

from dlcore.vae.steps import (create_vae_state, vae_eval_step, vae_objective,
                              vae_step)
from dlcore.vae.train import VaeConfig, train_vae

__all__ = ["VaeConfig", "create_vae_state", "train_vae", "vae_eval_step",
           "vae_objective", "vae_step"]

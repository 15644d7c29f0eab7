"""The variational autoencoder.

  dlcore.vae.config     ``VaeConfig``.
  dlcore.vae.state      ``create_vae_state``.
  dlcore.vae.steps      ``vae_step``, ``vae_eval_step``: the negative ELBO.
  dlcore.vae.objective  ``vae_objective``.
  dlcore.vae.train      ``train_and_evaluate(config)``.
"""

from dlcore.vae.config import VaeConfig
from dlcore.vae.objective import vae_objective
from dlcore.vae.state import create_vae_state
from dlcore.vae.steps import vae_eval_step, vae_step
from dlcore.vae.train import train_and_evaluate

__all__ = ["VaeConfig", "create_vae_state", "train_and_evaluate",
           "vae_eval_step", "vae_objective", "vae_step"]

"""Generative objectives: GANs trained adversarially, and the VAE.

Modules:
  losses   minimax, non-saturating, WGAN-GP and hinge losses of logits.
  state    ``GANState`` (two train states) and ``create_gan_state``.
  steps    ``gan_step``: n_critic discriminator updates, one generator update.
  vae      ``vae_step`` on the ELBO and ``create_vae_state``.
  fcd      the Fréchet classifier distance and its cached classifier.
  train    ``GanConfig``/``train_gan``, ``VaeConfig``/``train_vae``.
"""

from dlcore.adversarial.losses import LOSSES, GanLoss, gradient_penalty
from dlcore.adversarial.state import GANState, create_gan_state, sample
from dlcore.adversarial.steps import gan_step, step_keys
from dlcore.adversarial.train import GanConfig, VaeConfig, train_gan, train_vae
from dlcore.adversarial.vae import create_vae_state, vae_eval_step, vae_step

__all__ = ["GANState", "GanConfig", "GanLoss", "LOSSES", "VaeConfig",
           "create_gan_state", "create_vae_state", "gan_step",
           "gradient_penalty", "sample", "step_keys", "train_gan", "train_vae",
           "vae_eval_step", "vae_step"]

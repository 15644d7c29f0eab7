"""``VaeConfig``: the options of ``experiments/vae.py`` (defaults: an MLP VAE on digits)."""

import dataclasses

from dlcore import experiment, optim
from dlcore.config import STEPS_RANGE, field
from dlcore.models.vae import LIKELIHOODS


@dataclasses.dataclass(frozen=True)
class VaeConfig(experiment.ExperimentConfig):
  """Options of ``experiments/vae.py`` (defaults: an MLP VAE on digits)."""
  dataset: str = field("digits", "digits (embedded), a TFDS name such as "
                       "mnist, or an .npz file (x_train, x_test)")
  likelihood: str = field("bernoulli", "pixel likelihood p(x | z): bernoulli "
                          "or gaussian (learned scale)", choices=LIKELIHOODS)
  latent_dim: int = field(16, "latent dimensions", valid="[1, inf)")
  steps: int = field(5000, "gradient steps", valid=STEPS_RANGE)
  optimizer: optim.OptimizerConfig = field(
      optim.OptimizerConfig(name="adam", lr=1e-3), "the optimizer")
  eval_batch_size: int = field(500, "test batch size (the last batch is "
                               "padded and masked)", valid="[1, inf)")
  sample_every: int = field(500, "steps between sample grids (0: at the end "
                            "only)", valid="[0, inf)")
  workdir: str = field("runs/vae", "where metrics, samples and checkpoints go")

"""``GanConfig``: the options of ``experiments/gan.py`` (defaults: a DCGAN on digits)."""

import dataclasses

from dlcore import experiment, optim
from dlcore.adversarial.losses import LOSSES
from dlcore.config import STEPS_RANGE, field
from dlcore.models.gan import ARCHITECTURES

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
  steps: int = field(3000, "generator updates", valid=STEPS_RANGE)
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
  classifier_dir: str | None = field(None, "where the FCD classifier of "
                                     "each dataset (keyed by a hash of its "
                                     "arrays) is "
                                     "trained once and cached (default "
                                     "WORKDIR/classifier)")
  fcd_samples: int = field(2000, "at most this many test and generated "
                           "images for the FCD", valid="[2, inf)")
  sample_every: int = field(500, "steps between sample grids (0: at the end "
                            "only)", valid="[0, inf)")
  workdir: str = field("runs/gan", "where metrics, samples and checkpoints go")

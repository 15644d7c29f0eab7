"""``CycleGanConfig``: the options of ``experiments/cyclegan.py`` (defaults: grey digits <-> digits on photos)."""

import dataclasses

from dlcore import experiment, optim
from dlcore.adversarial.losses import LOSSES
from dlcore.config import STEPS_RANGE, field
from dlcore.cyclegan.state import NetworkSpec

# CycleGAN's step has no gradient penalty, so WGAN-GP is not offered.
CYCLEGAN_LOSSES = tuple(name for name, spec in LOSSES.items()
                        if not spec.gradient_penalty)
CYCLEGAN_OPTIMIZER = optim.OptimizerConfig(
    name="adam", lr=2e-4, b1=0.5, schedule="constant_then_linear")


@dataclasses.dataclass(frozen=True)
class CycleGanConfig(experiment.RunConfig):
  """Options of ``experiments/cyclegan.py`` (defaults: grey digits <-> digits on photos)."""
  domain_a: str = field("digits32", "domain A: digits32 or digits32_photo "
                        "(embedded), digits, a TFDS name such as mnist, or "
                        "an .npz file")
  domain_b: str = field("digits32_photo", "domain B, as option domain_a")
  grey_to_rgb: bool = field(False, "repeat the channel of a grey domain "
                            "three times when the other domain is RGB")
  data_dir: str | None = field(None, "TFDS data directory (default "
                               "~/tensorflow_datasets)")
  steps: int = field(1500, "training steps (each: both generators, then both "
                     "discriminators)", valid=STEPS_RANGE)
  batch_size: int = field(4, "images of each domain per step (split evenly "
                          "over the devices)", valid="[1, inf)")
  loss: str = field("least-squares", "adversarial loss",
                    choices=CYCLEGAN_LOSSES)
  cycle_weight: float = field(10.0, "weight lambda of the cycle-consistency "
                              "L1 losses", valid="[0, inf)")
  identity_weight: float = field(0.5, "weight of the identity L1 losses as "
                                 "a multiple of lambda (0 = off)",
                                 valid="[0, inf)")
  pool_size: int = field(50, "earlier fakes kept per domain for the "
                         "discriminators (0 = none)", valid="[0, inf)")
  g_width: int = field(8, "generator width (filters of its first "
                       "convolution)", valid="[1, inf)")
  g_blocks: int = field(2, "residual blocks of the generators",
                        valid="[0, inf)")
  g_downsamplings: int = field(2, "stride-2 down-samplings of the "
                               "generators (image sides must divide by "
                               "2^this)", valid="[0, inf)")
  d_width: int = field(16, "discriminator width", valid="[1, inf)")
  d_layers: int = field(2, "stride-2 layers of the PatchGAN discriminators "
                        "(3: the paper's 70x70 patches)", valid="[1, inf)")
  optimizer: optim.OptimizerConfig = field(
      CYCLEGAN_OPTIMIZER, "the optimizer of each of the four networks")
  dtype: str = field("float32", "computation dtype; parameters and "
                     "optimizer state stay float32", choices=experiment.DTYPES)
  classifier_epochs: int = field(10, "epochs of each domain's classifier",
                                 valid="[1, inf)")
  classifier_dir: str | None = field(None, "where the domains' classifiers "
                                     "are trained once and cached (default "
                                     "WORKDIR/classifiers)")
  eval_batch_size: int = field(256, "images per translation batch when "
                               "measuring", valid="[1, inf)")
  log_every: int = field(50, "steps between metrics records (each the mean "
                         "over the steps since the last; 0: at the end "
                         "only)", valid="[0, inf)")
  eval_every: int = field(250, "steps between measurements on the test "
                          "images (0: at the end only)", valid="[0, inf)")
  sample_every: int = field(500, "steps between translation grids (0: at "
                            "the end only)", valid="[0, inf)")
  workdir: str = field("runs/cyclegan", "where metrics, grids and "
                       "checkpoints go")

  @property
  def spec(self) -> NetworkSpec:
    return NetworkSpec(self.g_width, self.g_blocks, self.g_downsamplings,
                       self.d_width, self.d_layers)

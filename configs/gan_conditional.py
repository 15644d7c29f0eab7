"""The conditional DCGAN on digits (non-saturating loss, projection discriminator).

  python experiments/gan.py --config configs/gan_conditional.py
"""

from dlcore.adversarial import GanConfig


def get_config() -> GanConfig:
  return GanConfig(conditional=True, workdir="runs/gan_conditional")

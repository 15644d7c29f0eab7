"""A long run with LM-style cadences: log every 100 steps, save every 1,000,
evaluate every 5,000; warmup and cosine decay, AdamW, an EMA for evaluation.

  python experiments/classify.py --config configs/classify_lm_cadences.py
"""

from dlcore.optim import OptimizerConfig
from dlcore.supervised import ClassifyConfig


def get_config() -> ClassifyConfig:
  return ClassifyConfig(
      model="cnn", epochs=400, log_every=100, eval_every=5_000,
      checkpoint_every=1_000,
      optimizer=OptimizerConfig(name="adamw", lr=3e-3, schedule="cosine",
                                warmup_steps=500, weight_decay=1e-4,
                                ema_decay=0.999),
      workdir="runs/classify_lm_cadences")

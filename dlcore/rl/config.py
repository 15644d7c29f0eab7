"""``RlConfig``: the options every compiled RL run shares (DQN's and PPO's configs extend it)."""

import dataclasses

from dlcore import experiment
from dlcore.config import STEPS_RANGE, field


@dataclasses.dataclass(frozen=True)
class RlConfig(experiment.RunConfig):
  """Options of a compiled RL run; environment steps count all parallel environments.

  One call of the train step is one compiled chunk of ``chunk_steps``
  environment steps per seed; the run is ``total_steps`` rounded up to
  whole chunks. The chunk shapes the compiled program, so a resumed run
  must keep it; the cadences only say when the loop records, evaluates and
  saves, and may change on resume.
  """
  devices: int | None = field(None, "devices the seeds are spread over, "
                              "--seeds / --devices on each (must divide "
                              "--seeds; default: the most devices that "
                              "divide --seeds)", valid="[1, inf)")
  env: str = field("CartPole-v1", "gymnax environment")
  total_steps: int = field(500_000, "environment steps per seed (rounded up "
                           "to whole --chunk-steps chunks)", valid=STEPS_RANGE)
  seeds: int = field(1, "independent seeds trained at once (a vmap over "
                     "seeds on each device)", valid="[1, inf)")
  chunk_steps: int = field(25_000, "environment steps per seed of one "
                           "compiled call (whole iterations)",
                           valid=STEPS_RANGE)
  log_every: int | None = field(None, "environment steps between metrics "
                                "records, a multiple of --chunk-steps (0: at "
                                "the end only; default: every chunk)",
                                valid="[0, inf)")
  eval_every: int = field(0, "environment steps between evaluations, rounded "
                          "up to whole chunks (0: at the end only)",
                          valid="[0, inf)")
  checkpoint_every: int = field(100_000, "environment steps between "
                                "checkpoints, rounded up to whole chunks (0: "
                                "at the end only; the final agent is always "
                                "saved)", valid="[0, inf)")
  eval_episodes: int = field(100, "episodes per seed of each evaluation",
                             valid="[1, inf)")

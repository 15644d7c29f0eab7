"""Train PPO on a gymnax environment (discrete or continuous actions), many seeds at once.

Defaults are PureJaxRL's CartPole-v1 reference run (about 500k environment
steps, 4 parallel environments, 128-step rollouts, one seed); see
``--help`` for every option. Results go to ``--workdir``: metrics.jsonl,
summary.json, returns.png and checkpoints/ (resume with ``--resume``).
"""

from dlcore import cli, parallel
from dlcore.config import parse_args
from dlcore.ppo import PpoConfig, train_and_evaluate


def main(argv=None) -> dict:
  config = parse_args(PpoConfig, __doc__, argv)
  parallel.initialize_distributed(config)
  summary = train_and_evaluate(config, config.workdir)
  print(f"greedy eval return {summary['eval_return']:.1f} (stochastic "
        f"{summary['eval_return_stochastic']:.1f}) over {summary['seeds']} "
        f"seed(s) ({summary['env_steps_per_sec']:,.0f} env steps/s after "
        f"{summary['compile_seconds']:.1f} s of compilation) "
        f"-> {config.workdir}")
  return summary


if __name__ == "__main__":
  cli.run(main)

"""Train DQN (or Double / dueling DQN) on a gymnax environment, many seeds at once.

Defaults are the CartPole-v1 reference run (500k environment steps, 10
parallel environments, one seed); see ``--help`` for every option. Results go
to ``--workdir``: metrics.jsonl, summary.json, returns.png and checkpoints/
(resume with ``--resume``).
"""

from dlcore import cli, parallel
from dlcore.config import parse_args
from dlcore.qlearning import DqnConfig, train_and_evaluate


def main(argv=None) -> dict:
  config = parse_args(DqnConfig, __doc__, argv)
  parallel.initialize_distributed(config)
  summary = train_and_evaluate(config, config.workdir)
  print(f"greedy eval return {summary['eval_return']:.1f} over "
        f"{summary['seeds']} seed(s) ({summary['env_steps_per_sec']:,.0f} env "
        f"steps/s after {summary['compile_seconds']:.1f} s of compilation) "
        f"-> {config.workdir}")
  return summary


if __name__ == "__main__":
  cli.run(main)

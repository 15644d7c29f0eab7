"""Train DQN (or Double / dueling DQN) on a gymnax environment, many seeds at once.

Defaults are the CartPole-v1 reference run (500k environment steps, 10
parallel environments, one seed); see ``--help`` for every option. Results go
to ``--workdir``: metrics.jsonl, summary.json, returns.png and checkpoints/
(resume with ``--resume``).
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.rl.dqn import DqnConfig, train_and_evaluate

main = cli.main_of(DqnConfig, train_and_evaluate, __doc__, lambda s: (
    f"greedy eval return {s['eval_return']:.1f} over {s['seeds']} seed(s) "
    f"({s['env_steps_per_sec']:,.0f} env steps/s after "
    f"{s['compile_seconds']:.1f} s of compilation)"))

if __name__ == "__main__":
  cli.run(main)

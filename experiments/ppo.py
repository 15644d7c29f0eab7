"""Train PPO on a gymnax environment (discrete or continuous actions), many seeds at once.

Defaults are PureJaxRL's CartPole-v1 reference run (about 500k environment
steps, 4 parallel environments, 128-step rollouts, one seed); see
``--help`` for every option. Results go to ``--workdir``: metrics.jsonl,
summary.json, returns.png and checkpoints/ (resume with ``--resume``).
"""

from dlcore import cli

if __name__ == "__main__":  # From here on a signal is one sentence, exit 75.
  cli.stop_on_signals()

# pylint: disable=wrong-import-position
from dlcore.rl.ppo import PpoConfig, train_and_evaluate

main = cli.main_of(PpoConfig, train_and_evaluate, __doc__, lambda s: (
    f"greedy eval return {s['eval_return']:.1f} (stochastic "
    f"{s['eval_return_stochastic']:.1f}) over {s['seeds']} seed(s) "
    f"({s['env_steps_per_sec']:,.0f} env steps/s after "
    f"{s['compile_seconds']:.1f} s of compilation)"))

if __name__ == "__main__":
  cli.run(main)

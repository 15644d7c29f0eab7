"""experiments/ppo.py end to end: its outputs."""

import json

import pytest

from conftest import run_script

# Pendulum (continuous actions, 200-step episodes): 4 chunks of one
# iteration, 64 steps of each of 2 environments.
TINY = ["--env", "Pendulum-v1", "--total-steps", "512", "--num-envs", "2",
        "--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "2",
        "--chunk-steps", "128", "--checkpoint-every", "256",
        "--eval-episodes", "2", "--seeds", "2", "--hidden-size", "16"]


def _records(workdir):
  return [json.loads(l)
          for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_script_writes_every_output(tmp_path, capsys):
  full = tmp_path / "full"
  summary = run_script("ppo", TINY + ["--workdir", str(full)])
  for name in ("metrics.jsonl", "summary.json", "returns.png", "model.txt"):
    assert (full / name).is_file()
  assert sorted(p.name for p in (full / "checkpoints").iterdir()) == [
      "256", "512"]
  saved = json.loads((full / "summary.json").read_text())
  assert saved["eval_return"] == summary["eval_return"]
  assert len(saved["eval_return_per_seed"]) == 2
  assert len(saved["eval_return_stochastic_per_seed"]) == 2
  assert saved["gradient_updates"] == 4 * 2 * 2  # iterations x epochs x minibatches
  assert saved["env_steps_per_sec"] == pytest.approx(
      2 * 512 / saved["train_seconds"])
  assert isinstance(saved["compile_seconds"], float)
  records = _records(full)
  assert [r["step"] for r in records] == [128, 256, 384, 512]
  # Pendulum's episodes last 200 steps: the first of each environment ends
  # in the last chunk (its steps 193 to 256; 2 seeds x 2 environments).
  assert [r["episodes"] for r in records] == [0, 0, 0, 4]
  assert records[0]["episode_return"] is None
  for name in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl",
               "clip_fraction"):
    assert isinstance(records[-1][name], float), name
  assert "greedy eval return" in capsys.readouterr().out

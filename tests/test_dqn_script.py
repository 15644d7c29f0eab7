"""experiments/dqn.py end to end: its outputs, and a divergence stopped before anything is saved."""

import json

import pytest

from conftest import run_script
from dlcore import files

TINY = ["--total-steps", "1000", "--num-envs", "4", "--buffer-size", "400",
        "--learning-starts", "200", "--batch-size", "16", "--train-every", "4",
        "--target-update-every", "40", "--chunk-steps", "500",
        "--checkpoint-every", "500", "--eval-episodes", "2", "--seeds", "2"]


@pytest.mark.slow
def test_script_writes_every_output(tmp_path, capsys):
  full = tmp_path / "full"
  summary = run_script("dqn", TINY + ["--workdir", str(full), "--double", "--dueling"])
  for name in ("metrics.jsonl", "summary.json", "returns.png"):
    assert (full / name).is_file()
  assert sorted(p.name for p in (full / "checkpoints").iterdir()) == ["1000", "500"]
  saved = json.loads((full / "summary.json").read_text())
  assert saved["eval_return"] == summary["eval_return"]
  assert len(saved["eval_return_per_seed"]) == 2
  # Two seeds of 1,000 environment steps in the timed chunks.
  assert saved["env_steps_per_sec"] == pytest.approx(
      2 * 1000 / saved["train_seconds"])
  assert isinstance(saved["compile_seconds"], float)
  records = [json.loads(l) for l in (full / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [500, 1000]
  assert records[-1]["epsilon"] == pytest.approx(0.05)
  assert records[-1]["loss"] is not None and records[0]["episodes"] > 0
  assert "greedy eval return" in capsys.readouterr().out


@pytest.mark.slow
def test_nan_loss_stops_before_writing_anything(tmp_path, capsys):
  workdir = tmp_path / "run"
  with pytest.raises(SystemExit) as exit_info:
    run_script("dqn", TINY + ["--seeds", "1", "--optimizer.lr", "1e30", "--workdir",
                 str(workdir)])
  assert exit_info.value.code == 3
  err = capsys.readouterr().err.strip().splitlines()[-1]  # After tqdm's bar.
  # Learning starts at step 200; Adam at lr 1e30 overflows within updates
  # of the first chunk, which is known only as a whole.
  # The agent and the environments were finite: the learning rate it was.
  assert err.startswith("error: loss became NaN or infinite within steps 1 "
                        "to 500 from a finite state and finite data, so the "
                        "updates diverged: lower --optimizer.lr 1e+30, or "
                        "clip the gradients (clip_norm)")
  assert err.endswith("; training stopped and the last good checkpoint was "
                      "kept")
  assert files.read_jsonl(workdir / "metrics.jsonl") == []  # No record.
  assert not (workdir / "summary.json").exists()
  assert not list((workdir / "checkpoints").iterdir())

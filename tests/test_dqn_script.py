"""experiments/dqn.py end to end: outputs, exact resume, and one sentence per bad input."""

import json

import jax
import pytest

from conftest import load_script, run_script
from dlcore import files
from dlcore.checkpoint import Checkpointer

TINY = ["--total-steps", "1000", "--num-envs", "4", "--buffer-size", "400",
        "--learning-starts", "200", "--batch-size", "16", "--train-every", "4",
        "--target-update-every", "40", "--log-every", "500",
        "--checkpoint-every", "500", "--eval-episodes", "2", "--seeds", "2"]


@pytest.mark.slow
def test_script_end_to_end_and_exact_resume(tmp_path, monkeypatch, capsys):
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

  # Interrupted after its first checkpoint, then resumed: the same run.
  parted = tmp_path / "parted"
  argv = TINY + ["--workdir", str(parted), "--double", "--dueling"]
  save = Checkpointer.save

  def save_then_crash(self, step, state, meta=None):
    save(self, step, state, meta)
    raise KeyboardInterrupt
  monkeypatch.setattr(Checkpointer, "save", save_then_crash)
  with pytest.raises(KeyboardInterrupt):
    run_script("dqn", argv)
  monkeypatch.setattr(Checkpointer, "save", save)
  assert not (parted / "summary.json").exists()
  with pytest.raises(SystemExit):  # An existing run needs --resume.
    run_script("dqn", argv)
  assert "--resume" in capsys.readouterr().err
  lowered = []  # Each program JAX lowers (also when its compiled code is cached).

  def count(event, duration, **kwargs):
    del duration
    if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
      lowered.append(kwargs.get("fun_name"))
  jax.monitoring.register_event_duration_secs_listener(count)
  try:
    resumed = run_script("dqn", argv + ["--resume"])
  finally:
    jax.monitoring.unregister_event_duration_listener(count)
  # The seeds' init and the chunk, this compiled ahead of time (its
  # compile_seconds): no recompilation is timed as training after a resume.
  assert lowered.count("jit(mapped)") == 2, lowered
  assert resumed["env_steps_per_sec"] == pytest.approx(
      2 * 1000 / resumed["train_seconds"])
  assert resumed["eval_return_per_seed"] == summary["eval_return_per_seed"]
  again = [json.loads(l) for l in (parted / "metrics.jsonl").read_text().splitlines()]
  for a, b in zip(records, again):
    assert a["loss"] == b["loss"] and a["episode_return"] == b["episode_return"]


BAD_INPUTS = {
    "unknown environment": (["--env", "CartPol-v1"],
                            "unknown environment 'CartPol-v1'; choose one of "
                            "CartPole-v1, Acrobot-v1"),
    "continuous actions": (["--env", "Pendulum-v1"], "continuous actions"),
    "batch larger than buffer": (["--batch-size", "500", "--buffer-size", "400",
                                  "--learning-starts", "100"],
                                 "--batch-size 500 is larger than the replay "
                                 "buffer"),
    "buffer below learning starts": (["--buffer-size", "400",
                                      "--learning-starts", "1000"],
                                     "--buffer-size 400 is smaller than "
                                     "--learning-starts 1000"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_one_sentence_and_no_workdir(name, tmp_path, capsys):
  argv, expected = BAD_INPUTS[name]
  workdir = tmp_path / "run"
  with pytest.raises(SystemExit) as exit_info:
    run_script("dqn", argv + ["--workdir", str(workdir)])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and expected in err
  assert len(err.splitlines()) == 1
  assert not workdir.exists()


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
                        "to 500 from a finite state and finite data, so "
                        "training diverged: a lower learning rate")
  assert err.endswith("; training stopped and the last good checkpoint was "
                      "kept")
  assert files.read_jsonl(workdir / "metrics.jsonl") == []  # No record.
  assert not (workdir / "summary.json").exists()
  assert not list((workdir / "checkpoints").iterdir())


def test_help_lists_every_option(capsys):
  with pytest.raises(SystemExit) as exit_info:
    load_script("dqn").main(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  for flag in ("--env", "--total-steps", "--num-envs", "--seeds", "--double",
               "--dueling", "--seed", "--workdir", "--resume"):
    assert flag in out

"""experiments/ppo.py end to end: outputs, exact resume, and one sentence per bad input."""

import json
import shutil

import pytest

from conftest import load_script, run_script

# Pendulum (continuous actions, 200-step episodes): 4 chunks of one
# iteration, 64 steps of each of 2 environments.
TINY = ["--env", "Pendulum-v1", "--total-steps", "512", "--num-envs", "2",
        "--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "2",
        "--log-every", "128", "--checkpoint-every", "256",
        "--eval-episodes", "2", "--seeds", "2", "--hidden-size", "16"]


def _records(workdir):
  return [json.loads(l)
          for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_script_end_to_end_and_exact_resume(tmp_path, capsys):
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

  # Back to the checkpoint at step 256, as if stopped there, and resumed:
  # steps 257 to 512 and the evaluation come out as before.
  shutil.rmtree(full / "checkpoints" / "512")
  with pytest.raises(SystemExit):  # An existing run needs --resume.
    run_script("ppo", TINY + ["--workdir", str(full)])
  assert "--resume" in capsys.readouterr().err
  resumed = run_script("ppo", TINY + ["--workdir", str(full), "--resume"])
  assert resumed["eval_return_per_seed"] == summary["eval_return_per_seed"]
  assert (resumed["eval_return_stochastic_per_seed"]
          == summary["eval_return_stochastic_per_seed"])
  for a, b in zip(records, _records(full), strict=True):
    for name in ("loss", "approx_kl", "episode_return_per_seed"):
      assert a[name] == b[name], name


BAD_INPUTS = {
    "unknown environment": (["--env", "CartPol-v1"],
                            "unknown environment 'CartPol-v1'; choose one of "
                            "CartPole-v1, Acrobot-v1"),
    "minibatches": (["--num-envs", "3", "--num-steps", "5"],
                    "--num-envs x --num-steps (15) must divide by "
                    "--num-minibatches 4"),
    "non-positive count": (["--update-epochs", "0"],
                           "--update-epochs must be at least 1, got 0"),
    "gamma": (["--gamma", "1.5"], "--gamma must be in [0, 1], got 1.5"),
    "lambda": (["--gae-lambda", "-0.1"],
               "--gae-lambda must be in [0, 1], got -0.1"),
    "int32 steps": (["--total-steps", "2147483647", "--log-every",
                     "1000000000"], "overflows the int32 step counters"),
    "seeds over devices": (["--seeds", "3", "--devices", "2"],
                           "--seeds 3 does not divide by --devices 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_one_sentence_and_no_workdir(name, tmp_path, capsys):
  argv, expected = BAD_INPUTS[name]
  workdir = tmp_path / "run"
  with pytest.raises(SystemExit) as exit_info:
    run_script("ppo", argv + ["--workdir", str(workdir)])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and expected in err
  assert len(err.splitlines()) == 1
  assert not workdir.exists()


def test_help_lists_every_option(capsys):
  with pytest.raises(SystemExit) as exit_info:
    load_script("ppo").main(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  for flag in ("--env", "--total-steps", "--num-envs", "--num-steps",
               "--seeds", "--update-epochs", "--num-minibatches", "--gamma",
               "--gae-lambda", "--clip-eps", "--ent-coef", "--vf-coef",
               "--optimizer.lr", "--workdir", "--resume"):
    assert flag in out

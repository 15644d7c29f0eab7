"""The prepared accelerator run cannot rot: its dry run, end to end, here."""

import json

import pytest

from benchmarks import accelerator


@pytest.mark.slow
def test_the_dry_run_measures_every_kind_of_unit_and_writes_its_results(
    tmp_path):
  results = accelerator.main(["--dry-run", "--output", str(tmp_path / "run")])
  assert [u["kind"] for u in results["units"]] == [
      "bench", "profile", "experiment", "proofs"]
  assert all(u["status"] == "ok" for u in results["units"]), results["units"]
  saved = json.loads((tmp_path / "run.json").read_text())
  assert saved["units"] == json.loads(json.dumps(results["units"]))
  bench, profile, experiment, proofs = results["units"]
  (record,) = bench["workloads"]
  assert record["sides"]["dlcore"]["utilisation_measured"] > 0
  assert profile["top_ops"]  # At least one XLA op with its milliseconds.
  assert experiment["figure"] == "test_accuracy" and experiment["value"] > 0.3
  assert (proofs["passed"], proofs["failed"]) == (1, 0)
  markdown = (tmp_path / "run.md").read_text()
  assert "| mlp | float32 | 4 |" in markdown
  assert (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"


def test_a_unit_that_would_not_finish_in_the_budget_is_skipped(tmp_path):
  results = accelerator.main(["--dry-run", "--budget-seconds", "20",
                              "--output", str(tmp_path / "run")])
  assert results["units"] == [] and len(results["skipped"]) == 4

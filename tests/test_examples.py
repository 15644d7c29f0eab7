"""The README's library example and the experiment config files run as written."""

import pathlib
import re

import pytest

from dlcore.adversarial import GanConfig
from dlcore.config import load_config_file
from dlcore.rl.dqn import DqnConfig
from dlcore.rl.ppo import PpoConfig
from dlcore.supervised import ClassifyConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_CLASSES = {"classify": ClassifyConfig, "gan": GanConfig,
                  "dqn": DqnConfig, "ppo": PpoConfig}


def readme_example() -> str:
  text = (ROOT / "README.md").read_text()
  block = re.search(r"<!-- example:begin -->\n```python\n(.*?)```\n"
                    r"<!-- example:end -->", text, re.S)
  return block.group(1)


@pytest.mark.slow
def test_the_readme_autoencoder_trains_resumes_and_writes_everything(
    tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)  # The example writes runs/autoencoder.
  code = readme_example()
  namespace: dict = {}
  exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  history = namespace["history"]
  workdir = tmp_path / "runs" / "autoencoder"
  records = history.records
  assert [r["step"] for r in records] == [50, 100, 150, 200, 250, 300]
  assert [r["step"] for r in records if "test_error" in r] == [100, 200, 300]
  # It learns: the test error falls below that of predicting the mean
  # training image (0.074 on digits; 0.5 everywhere: 0.180) and keeps falling.
  errors = [r["test_error"] for r in records if "test_error" in r]
  assert errors[-1] < errors[0] and errors[-1] < 0.06
  assert float(capsys.readouterr().out.split()[-1]) == errors[-1]
  for name in ("metrics.jsonl", "model.txt", "checkpoints", "tensorboard"):
    assert (workdir / name).exists(), name
  # Run again with resume: nothing left to do, the same history comes back.
  again = code.replace('workdir="runs/autoencoder",',
                       'workdir="runs/autoencoder", resume=True,')
  assert again != code
  exec(compile(again, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["history"].records == records


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.py")),
                         ids=lambda p: p.name)
def test_every_config_file_loads(path):
  config_class = CONFIG_CLASSES[path.name.split("_")[0]]
  config = load_config_file(path, config_class)
  assert config != config_class()  # It sets something.
  assert config.workdir == f"runs/{path.stem}"  # Runs do not mix.

"""Experiment configs: one frozen dataclass per script, parsed from the command line.

Usage::

  @dataclasses.dataclass(frozen=True)
  class Config:
    epochs: int = field(10, "passes over the training set")

  config = parse_args(Config, description="Train a classifier.")

Each field's default and help text live in one place, the dataclass, and
``--help`` lists every option with its default.
"""

import argparse
import dataclasses
import typing
from typing import Any, Sequence, TypeVar

from dlcore.errors import ConfigError

T = TypeVar("T")


def field(default: Any, help: str, choices: Sequence[str] | None = None):  # pylint: disable=redefined-builtin
  """A dataclass field carrying its command-line help text (and choices)."""
  return dataclasses.field(
      default=default, metadata={"help": help, "choices": choices})


def _flag(name: str) -> str:
  return "--" + name.replace("_", "-")


def build_parser(config_cls: type, description: str) -> argparse.ArgumentParser:
  """An argparse parser with one option per field of ``config_cls``."""
  parser = argparse.ArgumentParser(
      description=description,
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  hints = typing.get_type_hints(config_cls)
  for f in dataclasses.fields(config_cls):
    kind = hints[f.name]
    meta = f.metadata
    if kind is bool:
      parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction,
                          default=f.default, help=meta["help"])
      continue
    if typing.get_origin(kind) in (typing.Union, getattr(__import__("types"), "UnionType")):
      kind = next(a for a in typing.get_args(kind) if a is not type(None))
    parser.add_argument(_flag(f.name), type=kind, default=f.default,
                        choices=meta.get("choices"), help=meta["help"],
                        metavar=f.name.upper())
  return parser


def parse_args(config_cls: type[T], description: str,
               argv: Sequence[str] | None = None) -> T:
  """Parses ``argv`` (default: ``sys.argv[1:]``) into a ``config_cls``."""
  namespace = build_parser(config_cls, description).parse_args(argv)
  return config_cls(**vars(namespace))


def check_positive(config, *names: str) -> None:
  """Raises ``ConfigError`` naming the first option among ``names`` below 1."""
  for name in names:
    if getattr(config, name) < 1:
      raise ConfigError(f"option {name} must be at least 1, got "
                        f"{getattr(config, name)}")


def to_dict(config) -> dict[str, Any]:
  """The config as a JSON-serialisable dict."""
  return dataclasses.asdict(config)


RUN_OPTIONS = ("resume", "workdir", "data_dir", "devices", "parallel",
               "coordinator_address", "num_processes", "process_id")


def experiment_dict(config) -> dict[str, Any]:
  """The options that define what a run computes (``resume`` is not one of them)."""
  return {k: v for k, v in to_dict(config).items() if k != "resume"}


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Dotted names of the options whose values differ, ignoring ``RUN_OPTIONS``."""
  def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
      if isinstance(v, dict):
        out.update(flat(v, f"{prefix}{k}."))
      elif k not in RUN_OPTIONS:
        out[prefix + k] = v
    return out
  a, b = flat(recorded), flat(current)
  return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))

"""Command-line flags built from the configuration (``timnet.config.FLAGS``), and back.

Configuration flags have no argparse default (``SUPPRESS``): a flag is in the parsed
namespace only when the user typed it, so "was this flag given?" has one answer.
Their defaults, shown in ``--help``, are read from the dataclasses.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from timnet import config as cfg
from timnet.cli.common import EXIT_USAGE, PATH_RULE, HelpFormatter, user_path

GROUP_TITLES = {
    "data": "data",
    "architecture": "architecture",
    "optimisation": "optimisation",
    "protocol": "protocol",
    "devices": "devices",
    "outputs": "outputs",
    "model": "model file",
    "audio": "audio",
    "server": "server",
}
PATH_FIELDS = ("model_path", "result_path", "log_dir", "splits")
_CHOICES = {"recipe": tuple(cfg.RECIPES), "loss": cfg.LOSSES, "protocol": cfg.PROTOCOLS, "group": cfg.GROUPS,
            "activation": cfg.ACTIVATIONS}


class Parser(argparse.ArgumentParser):
    """argparse with whole flag names only and one ``error:`` line for a bad flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _int(text: str) -> int:
    try:
        return int(text)  # accepts the seed's 1_000_000
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _type_of(flag: cfg.Flag) -> Any:
    default = cfg.default_of(flag)
    if flag.name in ("max_folds",):
        return _int
    if isinstance(default, bool):
        return None
    if isinstance(default, int):
        return _int
    if isinstance(default, float):
        return _float
    return str


def groups(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> dict[str, argparse._ArgumentGroup]:
    return {name: parser.add_argument_group(GROUP_TITLES[name]) for name in names}


def add_config_flags(parser: argparse.ArgumentParser, flag_names: tuple[str, ...] | None = None,
                     group_of: dict[str, argparse._ArgumentGroup] | None = None,
                     help_suffix: str = "") -> None:
    """Add the configuration's flags (all, or ``flag_names``) to ``parser``'s groups."""
    group_of = group_of or {}
    for flag in cfg.FLAGS:
        if flag_names is not None and flag.name not in flag_names:
            continue
        target = group_of.get(flag.group) or parser
        default = cfg.default_of(flag)
        choices = _CHOICES.get(flag.name)
        extra = f"; one of {', '.join(choices)}" if choices else ""
        key = flag.field.removeprefix("architecture.")
        shown = (", ".join(f"{name} recipe {getattr(r, key)}" for name, r in cfg.RECIPES.items())
                 if key in cfg.RECIPE_FIELDS else default)
        help_text = f"{flag.help}{extra} (default: {shown}){help_suffix}"
        if isinstance(default, bool):
            target.add_argument(f"--{flag.name}", action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            target.add_argument(f"--{flag.name}", type=_type_of(flag), default=argparse.SUPPRESS,
                                metavar=flag.name.upper(), help=help_text)


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration flags the user typed, with their values (paths made absolute)."""
    given = {name: value for name, value in vars(args).items() if name in cfg.FLAG_BY_NAME}
    for name in PATH_FIELDS:
        if name in given:
            given[name] = user_path(given[name])
    return given


def config_from_args(args: argparse.Namespace) -> cfg.TrainingConfig:
    """The validated configuration of a run: defaults, recipe, then the flags given."""
    return cfg.make_config(given_settings(args))


def architecture_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Architecture flags the user typed: a model file must agree with them (field names;
    ``head`` from ``--loss``). Dropout is not part of a trained network's inference."""
    given = given_settings(args)
    out: dict[str, Any] = {}
    for name, value in given.items():
        field = cfg.FLAG_BY_NAME[name].field
        if field.startswith("architecture.") and field != "architecture.dropout":
            out[field.split(".", 1)[1]] = value
    if "loss" in given:
        out["head"] = cfg.head_for_loss(given["loss"])
    if out:  # values must be valid before they are compared with a file
        arch = {k: v for k, v in out.items() if k != "head"}
        cfg.ArchitectureConfig(**arch)
    return out


def epilog(example: str) -> str:
    return f"example:\n  {example}\n\n{PATH_RULE}"

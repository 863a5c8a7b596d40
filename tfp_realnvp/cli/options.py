"""Options derived from the configs' `Setting` table, list parsers, and `--config FILE`."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tfp_realnvp.config import Setting, settings


def _click_type(python_type: type, rule: Setting) -> Any:
    if rule.choices is not None:
        return click.Choice(rule.choices)
    bounds = dict(min=rule.low, min_open=rule.low_open, max=rule.high, max_open=rule.high_open)
    if python_type is int:
        return click.IntRange(**bounds)
    if python_type is float:
        return click.FloatRange(**bounds)
    return python_type


def config_options(*classes: type, auto: dict[str, str] | None = None
                   ) -> Callable[[Callable], Callable]:
    """Adds one `--option` per CLI-visible config field of `classes`, default None (unset).

    Unset options leave the dataclass default (shown in the help), or, for a field in
    `auto` (field name -> its rule in one line, e.g. `tfp_realnvp.auto.RULES`), the value
    the automatic choice makes (the help shows `[default: auto: RULE]`); a given one
    overrides it. Booleans become `--name/--no-name` switches.
    """
    def decorate(command: Callable) -> Callable:
        for cls in reversed(classes):
            hints = typing.get_type_hints(cls)
            for field, rule in reversed(list(settings(cls))):
                if not rule.cli:
                    continue
                flag = field.name.replace("_", "-")
                default = field.default if field.name not in (auto or {}) else \
                    f"auto: {auto[field.name]}"
                help_text = f"{rule.help} [default: {default}]"
                python_type = _plain_type(hints[field.name])
                if python_type is bool:
                    option = click.option(f"--{flag}/--no-{flag}", field.name, default=None,
                                          help=help_text)
                else:
                    option = click.option(f"--{flag}", field.name, default=None,
                                          type=_click_type(python_type, rule), help=help_text)
                command = option(command)
        return command

    return decorate


def _plain_type(hint: Any) -> type:
    """`int | None` -> `int`."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def name_list(allowed: tuple[str, ...]) -> Callable[[click.Context, click.Parameter, str],
                                                    tuple[str, ...]]:
    """A click callback: `a,b` -> `("a", "b")`, each one of `allowed`."""
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(v.strip() for v in value.split(",") if v.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise click.BadParameter(f"{unknown or value!r}: choose from {', '.join(allowed)}.")
        return names

    return parse


def int_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """A click callback: `0,2,3` -> `(0, 2, 3)`."""
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected integers separated by commas.") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML or JSON file's top-level table; click errors name the file."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            values = json.loads(path.read_text())
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                raise click.BadParameter(f"{path}: reading TOML needs Python >= 3.11; write "
                                         "the same keys as JSON instead.") from None
            values = tomllib.loads(path.read_text())
        else:
            raise click.BadParameter(f"{path}: must end in .toml or .json.")
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, TOMLDecodeError
        raise click.BadParameter(f"{path} is not valid {suffix[1:].upper()}: {error}") from None
    if not isinstance(values, dict):
        raise click.BadParameter(f"{path}: expected a table of option = value; got "
                                 f"{type(values).__name__}.")
    return values


def config_file_defaults(ctx: click.Context, param: click.Parameter,
                         path: Path | None) -> Path | None:
    """`--config FILE`: the file's values become the command's defaults (`default_map`), so
    every option given on the command line wins. Keys are the long option names, with `-`
    or `_` (`hidden-units`, `hidden_units`, `out`, `data`); each value is checked by the
    option's own type; an unknown key is refused with the list of known ones."""
    if path is None:
        return None
    options = {}
    for other in ctx.command.params:
        if isinstance(other, click.Option) and other.name != param.name:
            for flag in other.opts:
                options[flag.lstrip("-").replace("-", "_")] = other
    values, unknown = {}, []
    for key, value in read_config_file(path).items():
        option = options.get(str(key).replace("-", "_"))
        if option is None:
            unknown.append(key)
            continue
        try:
            converted = option.type_cast_value(ctx, value)
        except click.BadParameter as error:
            raise click.BadParameter(f"{path}: {key} = {value!r}: {error.message}") from None
        if (option.is_flag or option.is_bool_flag) and not isinstance(value, bool):
            raise click.BadParameter(f"{path}: {key} = {value!r}: expected true or false.")
        values[option.name] = converted
    if unknown:
        known = sorted({o.opts[0].lstrip("-") for o in options.values()})
        raise click.BadParameter(f"{path}: unknown key(s) {', '.join(map(str, unknown))}; "
                                 f"known: {', '.join(known)}.")
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return path

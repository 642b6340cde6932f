"""A flag is declared once, on the settings field it sets (`Annotated[T, Flag(...)] = default`):
its name comes from the field, its type from the annotation, its default from the field's default,
and its help, placeholder, aliases and the kube-apiserver flag it mirrors from the Flag. Every
command builds its argparse options from these declarations, so none writes a flag again."""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


class _FromField:
    """The default of a Flag that has none of its own: the field's."""


FROM_FIELD: Any = _FromField()


@dataclass(frozen=True, slots=True)
class Flag:
    help: str
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # the argparse type; None: the annotation's (int, str, ...)
    aliases: tuple[str, ...] = ()
    mirrors: str = ""  # the upstream flag it follows: a program (same name) or "PROGRAM --flag"; "" if none
    repeat: bool = False  # each use adds one value
    negatable: bool = False  # a boolean with a --no-NAME form
    # The default in words when other flags compute it ("DATA_DIR/certs"): the parser leaves it None
    # and the settings model computes it.
    derived: str = ""
    # Only a command's own use of a shared flag sets these (add_flag(..., required=True)).
    required: bool = False
    default: Any = FROM_FIELD


def option(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def flag_of(field: FieldInfo) -> Flag | None:
    return next((m for m in field.metadata if isinstance(m, Flag)), None)


def declared(model: type[BaseModel], name: str) -> tuple[FieldInfo, Flag]:
    field = model.model_fields[name]
    flag = flag_of(field)
    if flag is None:
        raise KeyError(f"{model.__name__}.{name} is not a flag")
    return field, flag


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], names: Iterable[str]) -> None:
    for name in names:
        add_flag(parser, model, name)


def add_flag(parser: argparse.ArgumentParser, model: type[BaseModel], name: str, **changes: Any) -> None:
    """The flag `name` of `model`; `changes` (help, required, repeat, default) are this command's own."""
    field, flag = declared(model, name)
    flag = replace(flag, **changes) if changes else flag
    parser.add_argument(option(name), *flag.aliases, dest=name, **_argument(field, flag))


def _argument(field: FieldInfo, flag: Flag) -> dict[str, Any]:
    kind = _value_type(field.annotation)
    options: dict[str, Any] = {"help": flag.help}
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction if flag.negatable else "store_true"
    else:
        options["metavar"] = flag.metavar
        if get_origin(kind) is Literal:
            options["choices"] = get_args(kind)
        else:
            options["type"] = flag.parse or kind
        if flag.repeat:
            options["action"] = "append"
    if flag.required:
        options["required"] = True
    else:
        options["default"] = _default(field, flag)
    if flag.derived:
        options["help"] = f"{flag.help} (default: {flag.derived})"
    return options


def _default(field: FieldInfo, flag: Flag) -> Any:
    if flag.default is not FROM_FIELD:
        value = flag.default
    elif flag.derived:
        return None
    else:
        value = field.get_default(call_default_factory=True, validated_data={})
    return list(value or ()) if flag.repeat else value  # argparse appends to a copy of the default


def _value_type(annotation: Any) -> Any:
    """int for `int`, `int | None` and `tuple[int, ...]`; the Literal itself for a Literal."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) is tuple:
        annotation = get_args(annotation)[0]
    return annotation


def values(model: type[BaseModel], parsed: argparse.Namespace) -> dict[str, Any]:
    """The model's fields a parsed command line holds; a derived default left unset is left out."""
    given = vars(parsed)
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        flag = flag_of(field)
        if flag is None or name not in given or (given[name] is None and flag.derived):
            continue
        found[name] = given[name]
    return found

"""A validation error as the user reads it: the key, what is wrong, what to do; no secret."""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from oai400d.config.secretkeys import SECRET_SOURCES, hide, holds_secret
from oai400d.config.settings import Settings


def _key_part(part: object) -> str:
    """One part of a key as TOML writes it: a glob of logs.wrappers in quotes."""
    text = str(part)
    return text if re.fullmatch(r"[\w-]+", text) else '"' + text.replace('"', '\\"') + '"'


def dotted(loc: tuple[str | int, ...]) -> str:
    """A key path as the messages write it: alerts.group_wait, journal.0.unit."""
    return ".".join(_key_part(part) for part in loc)


_TOML_TYPES = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (list, "an array"),
    (dict, "a table"),
    (str, "a string"),
)


def describe(error: Any) -> str:
    """One pydantic error as a line: the dotted key, what is wrong, never a secret's value."""
    loc = tuple(error["loc"])
    key = dotted(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: {_unknown(loc, error['input'])}"
    # Only the part after the key may quote the value; redacting the key too would take
    # "api_key: required" for a key=value pair.
    message = hide(str(error["msg"]).removeprefix("Value error, "))
    if error["type"] == "value_error":
        return f"{key}: {message}"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    if holds_secret(loc):
        # A secret of the wrong type is still a secret: say what it is, never what it holds.
        form = (
            'a table like headers = { Authorization = "…" }'
            if loc[-1] == "headers"
            else f'a string like {_key_part(loc[-1])} = "…"'
        )
        given = _toml_type(error["input"])
        return f"{key}: must be {form}, not {given} (the value is a secret and is not shown)"
    if loc == ("webhook",) and error["type"] == "list_type":
        return (
            f"{key}: must be an array of tables: write each webhook as [[webhook]] (two "
            f"brackets), not {_toml_type(error['input'])}"
        )
    if _section_with_secrets(loc) or _holds_secret_key(error["input"]):
        # What stands for a section with secrets, or a table with a secret's key, may be or
        # hold a secret: not quoted.
        return (
            f"{key}: {_toml_type(error['input'])} is not valid (the value may be a secret and is "
            f"not shown): {message[:1].lower()}{message[1:]}"
        )
    given = hide(repr(error["input"]))
    return f"{key}: {given} is not valid: {message[:1].lower()}{message[1:]}"


def _toml_type(value: object) -> str:
    """A value's TOML type in words ("an array"), for a message that must not show it."""
    given = next((name for t, name in _TOML_TYPES if isinstance(value, t)), "")
    return given or f"a {type(value).__name__}"


# The sections that hold a secret: a value written in place of one of them (`pagerduty =
# "KEY"`, a [[webhook]] entry as a string) may be that secret.
_SECRET_SECTIONS = {section for section, _ in SECRET_SOURCES} | {"webhook"}


def _section_with_secrets(loc: tuple[str | int, ...]) -> bool:
    """Whether the key is a section, or a [[webhook]] entry, that holds a secret."""
    if len(loc) == 1:
        return loc[0] in _SECRET_SECTIONS
    return len(loc) == 2 and loc[0] == "webhook" and isinstance(loc[1], int)


# The keys whose values are secrets, wherever they are.
_SECRET_KEYS = {key for _, key in SECRET_SOURCES} | {"secret", "headers"}


def _holds_secret_key(value: object) -> bool:
    """Whether a table (or an array of them) has a secret's key, at any depth."""
    if isinstance(value, Mapping):
        return any(key in _SECRET_KEYS or _holds_secret_key(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_secret_key(item) for item in value)
    return False


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds, itself or as the items of a list ([[journal]])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


# Each table's keys, for "did you mean": read from Settings, so a new section is in it too.
_TABLES: dict[str, type[BaseModel]] = {
    name: model
    for name, field in Settings.model_fields.items()
    if (model := _model_in(field.annotation)) is not None
}


def _unknown(loc: tuple[str | int, ...], value: object) -> str:
    """An unknown key or section, with the nearest known one ("did you mean")."""
    name = str(loc[-1])
    if len(loc) == 1:
        section = isinstance(value, Mapping)
        siblings: list[str] = list(Settings.model_fields)
    else:
        section = False
        model = _TABLES.get(str(loc[0]))
        siblings = list(model.model_fields) if model else []
    what = "section" if section else "key"
    # The same key in another table is the likelier mistake ([alerts] paths → logs.paths), then
    # a misspelling of a key of this table, then a misspelling of another table's.
    elsewhere = [
        f"{table}.{name}"
        for table, model in _TABLES.items()
        if name in model.model_fields and (len(loc) == 1 or table != loc[0])
    ]
    # One wrong letter of a three-letter key (urx for url) scores 0.67.
    close = difflib.get_close_matches(name, siblings, n=2, cutoff=0.7 if len(name) > 3 else 0.6)
    if not elsewhere and not close:
        keys = {key for model in _TABLES.values() for key in model.model_fields}
        near = difflib.get_close_matches(name, keys, n=2, cutoff=0.8)
        elsewhere = [
            f"{table}.{key}"
            for table, model in _TABLES.items()
            for key in model.model_fields
            if key in near
        ][:3]
    if elsewhere:
        hint = " or ".join(elsewhere)
    elif close:
        prefix = "" if len(loc) == 1 else dotted(loc[:-1]) + "."
        hint = " or ".join(f"[{c}]" if section else prefix + c for c in close)
    else:
        return f"unknown {what} (check its spelling against config.example.toml)"
    return f"unknown {what}; did you mean {hint}? (see config.example.toml)"

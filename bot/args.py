"""Turning ``/milvus <command> ...`` text into a command's pydantic argument model, and back into help.

Positional fields are declared with ``positional()``; every other field is an ``--option``. Booleans
are flags (``--dry-run``), list fields repeat (``--set a=1 --set b=2``) and a positional list takes
the rest of the line. Sizes and counts accept suffixes: ``100M``, ``1.5B``, ``512Gi``.
"""

from __future__ import annotations

import difflib
import re
import shlex
import types
import typing
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo

from bot.blocks import code
from bot.errors import UsageError

_COUNT_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_BYTE_SUFFIX = {
    "": 1,
    "B": 1,
    "K": 10**3,
    "KB": 10**3,
    "KI": 2**10,
    "KIB": 2**10,
    "M": 10**6,
    "MB": 10**6,
    "MI": 2**20,
    "MIB": 2**20,
    "G": 10**9,
    "GB": 10**9,
    "GI": 2**30,
    "GIB": 2**30,
    "T": 10**12,
    "TB": 10**12,
    "TI": 2**40,
    "TIB": 2**40,
}
_NUMBER = re.compile(r"^\s*([0-9]+(?:[._][0-9]+)*)\s*([A-Za-z]*)\s*$")


def _split_number(text: str) -> tuple[float, str]:
    match = _NUMBER.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a number; write e.g. 100M, 1.5B or 250000")
    digits, suffix = match.groups()
    if "_" in digits:
        digits = digits.replace("_", "")
    return float(digits), suffix.upper()


def parse_count(value: Any) -> Any:
    """``100M`` -> 100_000_000 (decimal: 1M = 10^6, as in Milvus' sizing tool)."""
    if not isinstance(value, str):
        return value
    number, suffix = _split_number(value)
    if suffix not in _COUNT_SUFFIX:
        raise ValueError(f"unknown suffix '{suffix}' in '{value}'; use K, M or B (e.g. 100M, 1.5B)")
    result = number * _COUNT_SUFFIX[suffix]
    if result != int(result):
        raise ValueError(f"'{value}' is not a whole number")
    return int(result)


def parse_bytes(value: Any) -> Any:
    """``512Gi`` -> 512 * 2^30 bytes; ``100GB`` -> 100 * 10^9 bytes."""
    if not isinstance(value, str):
        return value
    number, suffix = _split_number(value)
    if suffix not in _BYTE_SUFFIX:
        raise ValueError(f"unknown size suffix '{suffix}' in '{value}'; use Mi, Gi, Ti (binary) or MB, GB, TB")
    return int(number * _BYTE_SUFFIX[suffix])


Count = Annotated[int, BeforeValidator(parse_count)]
ByteSize = Annotated[int, BeforeValidator(parse_bytes)]


def positional(default: Any = ..., *, description: str = "", **kwargs: Any) -> Any:
    return Field(default, description=description, json_schema_extra={"positional": True}, **kwargs)


def _is_positional(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("positional"))


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated to the type that decides how a token is consumed."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            non_none = [a for a in get_args(annotation) if a is not type(None)]
            annotation = non_none[0] if len(non_none) == 1 else str
        else:
            return annotation


def _is_list(info: FieldInfo) -> bool:
    return get_origin(_unwrap(info.annotation)) in (list, tuple, set)


def _is_bool(info: FieldInfo) -> bool:
    return _unwrap(info.annotation) is bool


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def usage_line(command: str, model: type[BaseModel]) -> str:
    parts = [f"/milvus {command}"]
    for name, info in model.model_fields.items():
        if _is_positional(info):
            label = f"<{name}>" if info.is_required() else f"[{name}]"
            parts.append(label + ("..." if _is_list(info) else ""))
    for name, info in model.model_fields.items():
        if _is_positional(info):
            continue
        flag = option_name(name)
        if _is_bool(info):
            parts.append(f"[{flag}]")
        elif info.is_required():
            parts.append(f"{flag} <{name}>")
        else:
            parts.append(f"[{flag} <{name}>]")
    return " ".join(parts)


def describe_options(model: type[BaseModel]) -> list[str]:
    lines = []
    for name, info in model.model_fields.items():
        label = f"<{name}>" if _is_positional(info) else option_name(name)
        desc = info.description or ""
        default = ""
        if (
            not info.is_required()
            and info.default_factory is None
            and info.default not in (None, False, [], ())
            and not _is_bool(info)
        ):
            shown = getattr(info.default, "value", info.default)
            default = f" (default {shown})"
        lines.append(f"`{label}` {desc}{default}".rstrip())
    return lines


def tokenize(text: str) -> list[str]:
    # Slack turns quotes into curly ones on many keyboards; treat them as plain quotes.
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"Could not read the command: {exc}.", hint="Check that every quote is closed.") from None


def parse_args(command: str, model: type[BaseModel], tokens: list[str]) -> BaseModel:
    fields = model.model_fields
    positional_names = [n for n, i in fields.items() if _is_positional(i)]
    values: dict[str, Any] = {}
    leftovers: list[str] = []
    usage = f"Usage: `{usage_line(command, model)}` (see `/milvus help {command}`)"
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--") and len(token) > 2:
            name, _, inline = token[2:].partition("=")
            key = name.replace("-", "_")
            negated = key.startswith("no_") and key[3:] in fields and _is_bool(fields[key[3:]])
            if negated:
                values[key[3:]] = False
                i += 1
                continue
            if key not in fields:
                options = [option_name(n) for n in fields]
                close = difflib.get_close_matches("--" + name, options, n=1)
                hint = f"Did you mean `{close[0]}`? " if close else ""
                raise UsageError(f"Unknown option {code('--' + name)} for `{command}`.", hint=hint + usage)
            info = fields[key]
            if _is_bool(info):
                values[key] = inline.lower() not in ("false", "0", "no") if inline else True
                i += 1
                continue
            if inline:
                value = inline
                i += 1
            else:
                if i + 1 >= len(tokens):
                    raise UsageError(f"Option `--{name}` needs a value.", hint=usage)
                value = tokens[i + 1]
                i += 2
            if _is_list(info):
                values.setdefault(key, []).append(value)
            else:
                values[key] = value
            continue
        leftovers.append(token)
        i += 1

    for name in positional_names:
        if not leftovers:
            break
        if name in values:
            continue
        if _is_list(fields[name]):
            values[name] = leftovers
            leftovers = []
        else:
            values[name] = leftovers.pop(0)
    if leftovers:
        raise UsageError(f"Unexpected argument {code(' '.join(leftovers))}.", hint=usage)

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            loc = err["loc"][0] if err["loc"] else ""
            label = f"<{loc}>" if loc in positional_names else option_name(str(loc)) if loc else "arguments"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required"
            problems.append(f"`{label}` {msg}")
        raise UsageError("; ".join(problems) + ".", hint=usage) from None


def closest(word: str, choices: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None

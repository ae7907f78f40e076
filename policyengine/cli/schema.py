"""The JSON Schema of the policy file format, generated from the model.

``policyengine/policy.schema.json`` is this schema as shipped (a test keeps
it in sync); ``policies/default.toml`` names it in a ``#:schema`` comment so
that editors with a TOML language server (taplo, Even Better TOML) complete
and check keys. It describes one *layer*: in an override file every key is
optional but a rule's ``id`` and a test's ``name``.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .. import _model
from .._model import (
    Amount,
    Attempts,
    BodyPath,
    Count,
    Method,
    Multiplier,
    Name,
    Pattern,
    Policy,
    Seconds,
    StatusRange,
    Template,
    TransportKind,
)
from .._transport import TRANSPORT_FAMILIES

__all__ = ["SCHEMA_PATH", "build_schema", "schema_text"]

#: The shipped schema file.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "policy.schema.json"

#: Keys an override layer must still give: what it merges by.
_REQUIRED = {"Rule": ["id"], "PolicyTest": ["name"]}

_STATUS: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 999},
        {
            "type": "string",
            "pattern": r"^\s*([1-9][xX][xX]|[0-9]{3}(\s*-\s*[0-9]{3})?)\s*$",
        },
    ],
    "description": "An HTTP status (429), a class ('5xx') or a range ('500-599').",
}
_NAMED: dict[object, dict[str, Any]] = {
    Seconds: {"type": "number", "minimum": 0, "description": "Seconds, >= 0."},
    Amount: {"type": "number", "minimum": 0},
    Multiplier: {"type": "number", "minimum": 1},
    Attempts: {"type": "integer", "minimum": 1},
    Count: {"type": "integer", "minimum": 0},
    Name: {"type": "string", "minLength": 1, "pattern": r"^\S(.*\S)?$"},
    Pattern: {"type": "string", "format": "regex"},
    Template: {"type": "string"},
    Method: {"type": "string", "pattern": "^[A-Za-z]+$"},
    BodyPath: {"type": "string"},
    TransportKind: {"enum": sorted(TRANSPORT_FAMILIES)},
    str: {"type": "string"},
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
}


def _one_or_many(item: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [item, {"type": "array", "items": item}]}


def _attribute_docs(cls: type) -> dict[str, str]:
    """``name: text`` entries of the class docstring's ``Attributes:`` section."""
    doc = inspect.getdoc(cls) or ""
    _, found, section = doc.partition("Attributes:\n")
    if not found:
        return {}
    docs: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        if line and not line.startswith(" "):
            break  # the section ended
        m = re.match(r"^    (\w+): (.*)$", line)
        if m:
            current = m.group(1)
            docs[current] = m.group(2).strip()
        elif current and line.strip():
            docs[current] += " " + line.strip()
    return {k: _plain(v) for k, v in docs.items()}


def _plain(text: str) -> str:
    """Docstring text without reStructuredText literals."""
    return re.sub(r"``([^`]*)``", r"\1", text)


class _Builder:
    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}

    def of(self, tp: object) -> dict[str, Any]:
        if tp in _NAMED:
            return dict(_NAMED[tp])
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:
                return self.of(options[0])  # TOML has no null: omitted is None
            return {"anyOf": [self.of(a) for a in options]}
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item = args[0]
            if item is StatusRange:
                return _one_or_many(_STATUS)
            if item is str:  # codes may be numbers; one value or a list
                return _one_or_many({"type": ["string", "integer"]})
            if item in (Method, TransportKind):
                return _one_or_many(self.of(item))
            return {"type": "array", "items": self.of(item)}
        if origin is tuple and args == (float, float):
            number = {"type": "number", "minimum": 0}
            return {
                "anyOf": [
                    number,
                    {"type": "array", "items": number, "minItems": 2, "maxItems": 2},
                ],
                "description": "Seconds, or [low, high].",
            }
        if origin in (Mapping, dict) or tp is Mapping:
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"enum": [m.value for m in tp]}
        if isinstance(tp, type) and attrs.has(tp):
            return self.ref(tp)
        raise TypeError(f"no schema for {tp!r}")  # pragma: no cover - a new model type

    def ref(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.definitions:
            self.definitions[name] = {}  # placeholder: breaks cycles
            self.definitions[name] = self.object(cls)
        return {"$ref": f"#/definitions/{name}"}

    def object(self, cls: type, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        hints = typing.get_type_hints(cls, vars(_model))
        docs = _attribute_docs(cls)
        properties: dict[str, Any] = dict(extra or {})
        for field in attrs.fields(cls):
            if not field.init or field.eq is False or field.name.startswith("_"):
                continue
            prop = self.of(hints[field.name])
            if field.name in docs:
                prop["description"] = docs[field.name]
            default = field.default
            if isinstance(default, enum.Enum):
                prop["default"] = default.value
            elif isinstance(default, (bool, int, float, str)):
                prop["default"] = default
            elif default == ():
                prop["default"] = []
            properties[field.name] = prop
        out: dict[str, Any] = {"type": "object", "properties": properties}
        doc = inspect.getdoc(cls)
        if doc:
            out["description"] = _plain(doc.split("\n\n")[0].replace("\n", " "))
        out["additionalProperties"] = False
        if cls.__name__ in _REQUIRED:
            out["required"] = _REQUIRED[cls.__name__]
        return out


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a policy file."""
    builder = _Builder()
    top = builder.object(
        Policy,
        extra={
            "inherit": {
                "type": "boolean",
                "description": "false: start afresh; the layers beneath (the default "
                "included) are dropped.",
            }
        },
    )
    top.pop("description", None)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "policyengine policy",
        "description": "A policyengine policy file (or an override layer of one).",
        **top,
        "definitions": dict(sorted(builder.definitions.items())),
    }


def schema_text() -> str:
    """The schema as the shipped file has it."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"

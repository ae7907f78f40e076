"""The policy JSON Schema: in sync with the model and the shipped file, named
by default.toml, and accepting / rejecting what the loader does."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import policyengine as pe
from policyengine.cli.schema import SCHEMA_PATH, build_schema, schema_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def _is(value: object, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def validate(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$"
) -> list[str]:
    """The errors of ``value`` against the subset of draft-07 the policy schema uses."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        return validate(value, root["definitions"][name], root, path)
    if "anyOf" in schema:
        if any(not validate(value, option, root, path) for option in schema["anyOf"]):
            return []
        return [f"{path}: matches none of anyOf"]
    errors = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is(value, n) for n in names):
            return [f"{path}: expected {types}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value!r} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: {value!r} > {schema['maximum']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: too short")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: too few items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: too many items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: {key!r} is required")
        for key, item in value.items():
            if key in properties:
                errors += validate(item, properties[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unknown key {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(item, schema["additionalProperties"], root, f"{path}.{key}")
    return errors


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return build_schema()


def test_shipped_file_is_in_sync() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "regenerate: python -m policyengine schema > policyengine/policy.schema.json"
    )


def test_default_policy_names_the_schema() -> None:
    default = pe.default_policy_path()
    first = default.read_text(encoding="utf-8").splitlines()[0]
    assert first == "#:schema ../policyengine/policy.schema.json"
    assert (default.parent / first.removeprefix("#:schema ")).resolve() == SCHEMA_PATH


def test_default_policy_validates(schema: dict[str, Any]) -> None:
    data = tomllib.loads(pe.default_policy_path().read_text(encoding="utf-8"))
    assert validate(data, schema, schema) == []


def test_dumped_policy_validates(schema: dict[str, Any], default_policy: pe.Policy) -> None:
    assert validate(tomllib.loads(pe.dump_policy(default_policy)), schema, schema) == []


def test_override_layer_validates(schema: dict[str, Any]) -> None:
    layer = tomllib.loads(
        '[[rules]]\nid = "rate-limit"\nmax_attempts = 8\n'
        '[[rules]]\nid = "new"\nmatch = { status = ["5xx", 418], method = "POST", '
        'transport = ["timeout"], code = [42, "x"], headers = { "x-a" = true } }\n'
        '[[tests]]\nname = "429 is retried"\nexpect = { delay = [0.5, 1] }\n'
    )
    assert validate(layer, schema, schema) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("colour = 1", "$: unknown key 'colour'"),
        ("[[rules]]\nmatch = { status = 429 }", "$.rules[0]: 'id' is required"),
        ('[[rules]]\nid = "x"\naction = "retri"', "$.rules[0].action: 'retri' not in"),
        ('[[rules]]\nid = "x"\nmax_attempts = 0', "$.rules[0].max_attempts: 0 < 1"),
        ('[[rules]]\nid = "x"\nmatch = { status = "5yy" }', "$.rules[0].match.status: matches"),
        ('[[rules]]\nid = "x"\nmatch = { transport = "smoke" }', "$.rules[0].match.transport"),
        ("[defaults.backoff]\nmultiplier = 0.5", "$.defaults.backoff.multiplier: 0.5 < 1"),
        ('[[tests]]\nname = "t"\nexpect = { kind = "sleep" }', "$.tests[0].expect.kind"),
    ],
)
def test_schema_rejects_what_the_loader_rejects(
    schema: dict[str, Any], text: str, error: str, tmp_path: Path
) -> None:
    errors = validate(tomllib.loads(text), schema, schema)
    assert errors
    assert errors[0].startswith(error)
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(pe.PolicyError):
        pe.load_policy(path, env=False)


def test_descriptions_and_defaults_come_from_the_model(schema: dict[str, Any]) -> None:
    match = schema["definitions"]["Match"]["properties"]
    assert match["message"]["description"] == (
        "Case-insensitive substrings of the error message (any of them)."
    )
    backoff = schema["definitions"]["Backoff"]["properties"]
    assert (backoff["initial"]["default"], backoff["jitter"]["default"]) == (0.5, "equal")
    assert json.loads(schema_text()) == schema


def test_real_jsonschema_agrees(schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = tomllib.loads(pe.default_policy_path().read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(data, schema)

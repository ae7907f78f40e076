"""The bundled policy files' pre-parsed copies: current, used only when made
from the very bytes of the TOML file, and never changing what loads."""

from __future__ import annotations

import datetime
import json
import os
import threading
from pathlib import Path

import pytest

import policyengine as pe
from policyengine._bundled import (
    FORMAT,
    MAX_COPY_BYTES,
    bundled_files,
    copy_path,
    default_policy_path,
    make_copy,
    read_copy,
)
from policyengine._compat import tomllib
from policyengine._loading import policy_from_dicts
from tests.test_imports import loaded_after

REWRITE = "python -m policyengine._bundled"


def test_the_bundled_files() -> None:
    files = bundled_files()
    assert files[0] == default_policy_path()
    assert {f.stem for f in files[1:]} == set(pe.preset_names())


@pytest.mark.parametrize("toml", bundled_files(), ids=lambda p: p.stem)
def test_each_copy_is_current(toml: Path) -> None:
    raw = toml.read_bytes()
    found = read_copy(toml, raw)
    assert found is not None, f"{copy_path(toml)} is missing or stale: run {REWRITE}"
    parsed = tomllib.loads(raw.decode("utf-8"))
    # Equal, and in the same order (tables keep the file's order of keys).
    assert json.dumps(found) == json.dumps(parsed), f"run {REWRITE}"


def _write(tmp_path: Path, toml_text: str, copy_text: str | None) -> tuple[Path, bytes]:
    toml = tmp_path / "policy.toml"
    toml.write_text(toml_text, encoding="utf-8")
    if copy_text is not None:
        copy_path(toml).parent.mkdir(exist_ok=True)
        copy_path(toml).write_text(copy_text, encoding="utf-8")
    return toml, toml.read_bytes()


def test_a_copy_of_the_same_bytes_is_read(tmp_path: Path) -> None:
    text = 'description = "x"\n[defaults]\nmax_attempts = 3\n'
    raw = text.encode()
    made = make_copy(raw, tomllib.loads(text))
    assert made is not None
    toml, raw = _write(tmp_path, text, made)
    assert read_copy(toml, raw) == {"description": "x", "defaults": {"max_attempts": 3}}


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.replace("3", "4"), id="same size, other bytes"),
        pytest.param(lambda t: t + "\n", id="other size"),
    ],
)
def test_a_copy_of_other_bytes_is_not_read(tmp_path: Path, edit: object) -> None:
    text = 'description = "x"\n[defaults]\nmax_attempts = 3\n'
    made = make_copy(text.encode(), tomllib.loads(text))
    assert made is not None
    toml, raw = _write(tmp_path, edit(text), made)  # type: ignore[operator]
    assert read_copy(toml, raw) is None


@pytest.mark.parametrize(
    "copy_text",
    [
        None,
        "",
        "{not json",
        "[]",
        '{"toml": {}, "document": {}}',
        "[" * 100_000,
    ],
    ids=["missing", "empty", "broken", "a list", "no stamp", "too deep"],
)
def test_a_broken_copy_is_not_read(tmp_path: Path, copy_text: str | None) -> None:
    toml, raw = _write(tmp_path, 'description = "x"\n', copy_text)
    assert read_copy(toml, raw) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_for_a_copy_is_not_waited_on(tmp_path: Path) -> None:
    toml, raw = _write(tmp_path, 'description = "x"\n', None)
    copy_path(toml).parent.mkdir()
    os.mkfifo(copy_path(toml))
    found: list[object] = []
    reading = threading.Thread(target=lambda: found.append(read_copy(toml, raw)), daemon=True)
    reading.start()
    reading.join(5)
    stalled = reading.is_alive()
    if stalled:  # let the reader go: a writer that closes at once is an end of file
        os.close(os.open(copy_path(toml), os.O_WRONLY))
        reading.join(5)
    assert not stalled
    assert found == [None]


def test_a_copy_larger_than_the_bound_is_not_read(tmp_path: Path) -> None:
    text = 'description = "x"\n'
    made = make_copy(text.encode(), tomllib.loads(text))
    assert made is not None
    padded = made.rstrip() + " " * MAX_COPY_BYTES + "\n"
    toml, raw = _write(tmp_path, text, padded)
    assert read_copy(toml, raw) is None
    copy_path(toml).write_text(made, encoding="utf-8")
    assert read_copy(toml, raw) is not None


def test_a_copy_of_another_format_is_not_read(tmp_path: Path) -> None:
    text = 'description = "x"\n'
    made = make_copy(text.encode(), tomllib.loads(text))
    assert made is not None
    other = json.loads(made)
    other["toml"]["format"] = FORMAT + 1
    toml, raw = _write(tmp_path, text, json.dumps(other))
    assert read_copy(toml, raw) is None


def test_a_document_json_cannot_carry_gets_no_copy() -> None:
    assert make_copy(b"", {"when": datetime.date(2026, 11, 30)}) is None
    assert make_copy(b"", {"x": [float("inf")]}) is None
    assert make_copy(b"", {"x": [1, "a", None, True, 1.5, {"y": []}]}) is not None


def test_the_default_loads_as_its_toml_does() -> None:
    toml = default_policy_path()
    parsed = tomllib.loads(toml.read_text(encoding="utf-8"))
    loaded = pe.load_policy(env=False)
    built = policy_from_dicts([(str(toml), parsed)])
    assert loaded == built
    assert dict(loaded.origins) == dict(built.origins)
    assert dict(loaded.inherited) == dict(built.inherited)


def test_loading_the_default_reads_no_toml() -> None:
    # The parser is imported only for a TOML file without a current copy.
    loaded = loaded_after("import policyengine as pe\npe.load_policy(env=False)")
    assert "tomllib" not in loaded and "tomli" not in loaded

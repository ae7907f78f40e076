"""Dumping: a ``Policy`` as TOML that loads back to an equal policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import tomli_w

from ._model import (
    ActionKind,
    Handling,
    HintFormat,
    Jitter,
    KeyPart,
    LongHint,
    Match,
    Name,
    Policy,
    Rule,
    StatusRange,
    follows_action,
)

__all__ = ["dump_policy", "policy_to_dict"]


def _unstructure(value: object) -> Any:
    if isinstance(value, StatusRange):
        return value.low if value.exact else str(value)
    if isinstance(value, (ActionKind, Jitter, LongHint, HintFormat, KeyPart)):
        return value.value
    if attrs.has(type(value)):
        out = {}
        for field in attrs.fields(type(value)):  # type: ignore[arg-type]
            if not field.init or field.eq is False:
                continue
            item = getattr(value, field.name)
            if item is None:
                continue  # TOML has no null: an omitted key is None
            out[field.name] = _unstructure(item)
        return out
    if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], StatusRange):
        return _unstructure(value[0])
    if isinstance(value, (tuple, list)):
        return [_unstructure(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _unstructure(v) for k, v in value.items()}
    return value


def _compact(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in defaults or defaults[k] != v}


_OUTCOME = tuple(f.name for f in attrs.fields(Handling))


def _outcome(value: Handling, base: Handling) -> dict[str, Any]:
    """The outcome keys of ``value`` that loading must be told to get it
    from ``base`` (``backoff`` key by key; ``retryable`` when the action
    given would not imply it)."""
    data, inherited = _unstructure(value), _unstructure(base)
    out = {k: data[k] for k in _OUTCOME if k != "retryable" and data[k] != inherited[k]}
    if "backoff" in out:
        out["backoff"] = _compact(out["backoff"], inherited["backoff"])
    told = "action" in out and value.action is not ActionKind.FALLBACK
    implied = follows_action(value) if told else base.retryable
    if value.retryable != implied:
        out["retryable"] = value.retryable
    return out


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The policy as a TOML-ready dict that loads back to an equal policy
    (``inherit = false``; a key equal to what it would inherit is left out)."""
    defaults = policy.defaults
    empty_rule = _unstructure(Rule(id=Name("x")))
    rules = []
    for rule in policy.rules:
        # The rule's own keys first, then its outcome, as people write them.
        data = _unstructure(rule)
        data = {k: data[k] for k in ("id", "description", "enabled", "match", "classification")}
        data["match"] = _compact(data["match"], _unstructure(Match()))
        if not data["match"]:
            del data["match"]
        if data["classification"] == defaults.classification:
            del data["classification"]
        data |= _outcome(rule, policy.handling_of(rule.classification))
        if data.get("enabled") is True:
            del data["enabled"]
        if data.get("description") == empty_rule["description"]:
            del data["description"]
        rules.append(data)
    out: dict[str, Any] = {"inherit": False}
    if policy.description:
        out["description"] = policy.description
    # [defaults] whole, as the reference lists it; retryable when it is not the action's.
    out["defaults"] = {"classification": defaults.classification} | {
        k: v
        for k, v in _unstructure(defaults).items()
        if k != "retryable" or defaults.retryable != follows_action(defaults)
    }
    if policy.classifications:
        out["classifications"] = {
            name: ({"description": c.description} if c.description else {}) | _outcome(c, defaults)
            for name, c in policy.classifications.items()
        }
    out["hints"] = hints = _unstructure(policy.hints)
    for source in hints["sources"]:
        for key in ("when", "header", "body"):
            if not source[key]:
                del source[key]
    out["governor"] = _unstructure(policy.governor)
    out["rules"] = rules
    if policy.tests:
        out["tests"] = [_unstructure(t) for t in policy.tests]
    return out


def dump_policy(policy: Policy) -> str:
    """The policy as TOML text; ``load_policy`` of it gives an equal policy."""
    return tomli_w.dumps(policy_to_dict(policy))

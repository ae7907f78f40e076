"""Matching: the rules of a policy compiled into an index, once, at load.

Precedence, highest first (documented in docs/policy.md, "Precedence"):

1. specificity tier: a specific fact (``code``, ``message``,
   ``message_regex``, ``transport``, or a ``type`` together with ``status``)
   = 4, an exact ``status`` = 3, a ``type`` alone = 2 (a generic match: one
   type comes with many statuses, so it never beats an exact status it was
   not written for), a status range = 1, none of these (a catch-all) = 0;
2. the number of conditions the rule sets (more is more specific);
3. position in the merged rule list (earlier wins; an override's new rules
   come before those of the layers beneath it).

Candidate lists by error code, error type, status and transport kind are
built at load. ``select()`` works on a *plan*: for one (status, code, type)
key, the candidates of every list that can apply, merged into one list in
precedence order, with everything the key settles (statuses, codes, types,
whether there is an error) already checked; made the first time the key is
seen and kept. A decision walks one list and takes the first rule whose
remaining conditions (message words, a pattern, the method, headers) hold,
which is the highest-precedence match: a policy of 1,000 rules costs about
what the default one does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import attrs

from ._errorbody import RawError
from ._headers import HeaderConditions, compile_headers, headers_hold
from ._model import Match, Policy, Response, Rule
from ._patterns import search
from ._text import TemplatePart, parse_template
from ._transport import TRANSPORT_FAMILIES

__all__ = [
    "CATCH_ALL",
    "EXACT_STATUS",
    "SPECIFIC",
    "STATUS_RANGE",
    "TYPE_ALONE",
    "CompiledRule",
    "Index",
    "specificity",
]

_BODY_FIELDS = ("code", "type", "message", "message_regex", "transport")


#: Specificity tiers, highest first: a fact only some responses carry; an exact
#: status; an error type alone (generic: it comes with many statuses); a
#: status range; nothing (a catch-all).
SPECIFIC, EXACT_STATUS, TYPE_ALONE, STATUS_RANGE, CATCH_ALL = 4, 3, 2, 1, 0


def specificity(match: Match) -> tuple[int, int]:
    """``(tier, number of conditions)`` of a match; larger is more specific."""
    if match.code or match.message or match.message_regex or match.transport:
        tier = SPECIFIC
    elif match.type and match.status:
        tier = SPECIFIC  # a type written for these statuses
    elif match.status and all(r.exact for r in match.status):
        tier = EXACT_STATUS
    elif match.type:
        tier = TYPE_ALONE
    elif match.status:
        tier = STATUS_RANGE
    else:
        tier = CATCH_ALL
    count = (
        sum(
            1
            for name in (
                "status",
                "code",
                "type",
                "message",
                "message_regex",
                "method",
                "transport",
            )
            if getattr(match, name)
        )
        + len(match.headers)
        + (match.error is not None)
    )
    return tier, count


@attrs.frozen
class CompiledRule:
    """A rule with its match normalised for fast checks."""

    rule: Rule
    position: int
    tier: int
    key: tuple[int, int, int]
    status: tuple[tuple[int, int], ...]
    codes: frozenset[str]
    types: frozenset[str]
    messages: tuple[str, ...]
    regex: re.Pattern[str] | None
    headers: HeaderConditions
    methods: frozenset[str]
    transports: frozenset[str]
    error: bool | None
    remediation: tuple[TemplatePart, ...]
    """The rule's remediation template, parsed."""
    dynamic: bool
    """It has conditions no plan settles (message words, a pattern, the
    method, headers): ``holds`` checks them per response."""
    words_only: bool
    """Its message words are its only such condition: checked inline."""

    @classmethod
    def compile(cls, rule: Rule, position: int) -> CompiledRule:
        m = rule.match
        tier, count = specificity(m)
        headers = compile_headers(m.headers)
        return cls(
            rule=rule,
            position=position,
            tier=tier,
            key=(tier, count, -position),
            status=tuple((r.low, r.high) for r in m.status),
            codes=frozenset(m.code),
            types=frozenset(m.type),
            messages=tuple(s.lower() for s in m.message),
            regex=re.compile(m.message_regex) if m.message_regex else None,
            headers=headers,
            methods=frozenset(s.upper() for s in m.method),
            transports=frozenset(m.transport),
            error=m.error,
            remediation=parse_template(rule.remediation),
            dynamic=bool(m.message or m.message_regex or m.method or m.headers),
            words_only=bool(m.message) and not (m.message_regex or m.method or m.headers),
        )

    def describe(self, seen: Mapping[str, str | None] | None = None) -> str:
        """The rule's conditions as text, for explanations. Given ``seen``
        (the observed code, type...), a long list shows only the value that matched."""
        m = self.rule.match
        parts = []
        if m.status:
            parts.append("status " + "/".join(str(r) for r in m.status))
        for name in ("code", "type", "method", "transport"):
            values = getattr(m, name)
            observed = seen.get(name) if seen else None
            if len(values) > 3 and observed in values:
                parts.append(f"{name} {observed!r} (one of {len(values)})")
            elif values:
                parts.append(f"{name} " + "/".join(repr(v) for v in values))
        if m.message:
            parts.append("message contains " + " or ".join(repr(s) for s in m.message))
        if m.message_regex:
            parts.append(f"message matches /{m.message_regex}/")
        for name, value in m.headers.items():
            if value is True:
                parts.append(f"header {name} present")
            elif value is False:
                parts.append(f"header {name} absent")
            else:
                parts.append(f"header {name}: {value}")
        if m.error is not None:
            parts.append("an error in the body" if m.error else "no error in the body")
        return ", ".join(parts) or "anything (catch-all)"

    def covers_transport(self, kind: str) -> bool:
        """Whether this rule matches a network failure of ``kind``, method aside."""
        if self.status or self.codes or self.types or self.messages or self.regex:
            return False
        if self.headers or self.error is not None:
            return False
        return not self.transports or (
            kind in self.transports or TRANSPORT_FAMILIES.get(kind) in self.transports
        )

    def matches(self, response: Response, error: RawError | None, lowered: str = "") -> bool:
        """Whether this rule matches a response and the error its body carries
        (``lowered``: the error message in lower case, if already computed)."""
        if self.transports:
            return False
        if self.status and not any(lo <= response.status <= hi for lo, hi in self.status):
            return False
        if self.codes and not self.has_code(error):
            return False
        if self.types and not self.codes and (error is None or error.type not in self.types):
            return False
        return self.rest_hold(response, error, lowered)

    def has_code(self, error: RawError | None) -> bool:
        """Whether the error carries one of this rule's codes, at its top
        level or nested (Google's reasons, Anthropic's ``details.error_code``...)."""
        if error is None:
            return False
        if error.code in self.codes:
            return True
        return bool(error.more_codes) and not self.codes.isdisjoint(error.more_codes)

    def settled(self, status: int, error: RawError | None, etype: str | None) -> bool:
        """Whether the conditions a plan settles hold: its statuses, codes
        (``error``'s, top level or nested) and types (``etype``), and whether
        there must be an error. What ``holds`` checks is left aside."""
        if self.transports:
            return False
        if self.status and not any(lo <= status <= hi for lo, hi in self.status):
            return False
        if self.error is not None and self.error is not (error is not None):
            return False
        if self.codes and not self.has_code(error):
            return False
        return not self.types or (error is not None and etype in self.types)

    def holds(self, response: Response, error: RawError | None, lowered: str) -> bool:
        """The conditions no plan settles: message words (``lowered``: the
        message in lower case), a pattern, the method, headers."""
        if self.messages and (error is None or not any(s in lowered for s in self.messages)):
            return False
        if self.regex is not None and (error is None or not search(self.regex, error.message)):
            return False
        if self.methods and response.method not in self.methods:
            return False
        return not self.headers or headers_hold(response.headers, self.headers)

    def rest_hold(self, response: Response, error: RawError | None, lowered: str = "") -> bool:
        """``matches``, less what the index list the rule is found in guarantees:
        its statuses, and its codes, or its types when it has no codes."""
        if self.error is not None and self.error is not (error is not None):
            return False
        if self.codes and self.types and (error is None or error.type not in self.types):
            return False
        if self.messages:
            if error is None:
                return False
            text = lowered or error.message.lower()
            if not any(s in text for s in self.messages):
                return False
        if self.regex is not None and (error is None or not search(self.regex, error.message)):
            return False
        if self.methods and response.method not in self.methods:
            return False
        return not self.headers or headers_hold(response.headers, self.headers)


#: Plans kept at most: a bound against odd statuses (codes and types outside
#: the policy's share the plan of "none").
_PLANS_MAX = 65_536

#: A plan's key: the status alone (no error), or with the error's code, type
#: and nested codes, each kept only if some rule names it.
PlanKey = int | tuple[int, str | None, str | None, tuple[str, ...]]


def _sorted(rules: Iterable[CompiledRule]) -> tuple[CompiledRule, ...]:
    return tuple(sorted(rules, key=lambda r: r.key, reverse=True))


@attrs.frozen
class Index:
    """Candidate lists for a policy's enabled rules; build with ``Index.build``."""

    rules: tuple[CompiledRule, ...]
    by_code: dict[str, tuple[CompiledRule, ...]]
    by_type: dict[str, tuple[CompiledRule, ...]]
    by_message: tuple[CompiledRule, ...]
    by_message_status: dict[int, tuple[CompiledRule, ...]]
    by_status: dict[int, tuple[CompiledRule, ...]]
    any_status: tuple[CompiledRule, ...]
    by_transport: dict[str, tuple[CompiledRule, ...]]
    types: frozenset[str]
    """Every error type some rule names."""
    _plans: dict[PlanKey, tuple[CompiledRule, ...]] = attrs.field(
        factory=dict, eq=False, repr=False
    )
    """Plan key -> the rules that can match, in precedence order, each with
    only its ``dynamic`` conditions left to check; filled as keys are seen."""

    @classmethod
    def build(cls, policy: Policy) -> Index:
        compiled = [
            CompiledRule.compile(rule, i) for i, rule in enumerate(policy.rules) if rule.enabled
        ]
        by_code: dict[str, list[CompiledRule]] = {}
        by_type: dict[str, list[CompiledRule]] = {}
        by_message: list[CompiledRule] = []
        status_rules: list[CompiledRule] = []
        transport_rules: list[CompiledRule] = []
        for rule in compiled:
            if rule.transports:
                transport_rules.append(rule)
            elif rule.codes:
                for code in rule.codes:
                    by_code.setdefault(code, []).append(rule)
            elif rule.types:
                for etype in rule.types:
                    by_type.setdefault(etype, []).append(rule)
            elif rule.messages or rule.regex is not None:
                by_message.append(rule)
            else:
                status_rules.append(rule)
        # Per status: the status-only rules covering it (a few hundred small
        # tuples). A status outside 0-999 only meets rules without a status.
        by_status: dict[int, list[CompiledRule]] = {}
        unscoped = [r for r in status_rules if not r.status]
        for rule in status_rules:
            for low, high in rule.status:
                for s in range(max(low, 0), min(high, 999) + 1):
                    by_status.setdefault(s, [])
                    if rule not in by_status[s]:
                        by_status[s].append(rule)
        # Message rules are checked one by one; those that also name statuses
        # are listed under each of them, so other statuses never check them.
        message_by_status: dict[int, list[CompiledRule]] = {}
        for rule in by_message:
            for s in {
                s for low, high in rule.status for s in range(max(low, 0), min(high, 999) + 1)
            }:
                message_by_status.setdefault(s, []).append(rule)
        by_transport: dict[str, list[CompiledRule]] = {}
        for kind in TRANSPORT_FAMILIES:
            by_transport[kind] = [r for r in transport_rules + unscoped if r.covers_transport(kind)]
        return cls(
            rules=tuple(compiled),
            by_code={k: _sorted(v) for k, v in by_code.items()},
            by_type={k: _sorted(v) for k, v in by_type.items()},
            by_message=_sorted(r for r in by_message if not r.status),
            by_message_status={s: _sorted(v) for s, v in message_by_status.items()},
            by_status={s: _sorted(v + unscoped) for s, v in by_status.items()},
            any_status=_sorted(unscoped),
            by_transport={k: _sorted(v) for k, v in by_transport.items()},
            types=frozenset(t for rule in compiled for t in rule.types),
        )

    def select(self, response: Response, error: RawError | None) -> CompiledRule | None:
        """The highest-precedence enabled rule matching a response, or None."""
        status = response.status
        key: PlanKey
        if error is None:
            key = status
        else:
            by_code = self.by_code
            code = error.code if error.code in by_code else None
            etype = error.type if error.type in self.types else None
            more = error.more_codes
            key = (status, code, etype, tuple(c for c in more if c in by_code) if more else ())
        plan = self._plans.get(key)
        if plan is None:
            plan = self.plan(status, error, key)
        lowered = ""  # the message in lower case, made when first needed
        for rule in plan:
            if not rule.dynamic:
                return rule
            if rule.messages and not lowered and error is not None:
                lowered = error.message.lower()
            if rule.words_only:
                for word in rule.messages:
                    if word in lowered:
                        return rule
            elif rule.holds(response, error, lowered):
                return rule
        return None

    def plan(self, status: int, error: RawError | None, key: PlanKey) -> tuple[CompiledRule, ...]:
        """The plan of ``key`` (see ``select``), made and kept."""
        candidates = list(self.by_status.get(status, self.any_status))
        etype = None
        if error is not None:
            etype = error.type if error.type in self.types else None
            for code in error.codes:
                candidates += self.by_code.get(code, ())
            if etype is not None:
                candidates += self.by_type.get(etype, ())
            candidates += self.by_message
            candidates += self.by_message_status.get(status, ())
        plan: list[CompiledRule] = []
        seen: set[int] = set()
        for rule in _sorted(candidates):
            if rule.position in seen:  # listed under two of the error's codes
                continue
            seen.add(rule.position)
            if error is None and (rule.messages or rule.regex is not None):
                continue
            if rule.settled(status, error, etype):
                plan.append(rule)
                if not rule.dynamic:
                    break  # it always matches here: nothing after it can win
        found = tuple(plan)
        if len(self._plans) < _PLANS_MAX:
            self._plans[key] = found
        return found

    def select_transport(self, kind: str, method: str | None) -> CompiledRule | None:
        """The highest-precedence enabled rule for a network failure, or None."""
        for rule in self.by_transport.get(kind, ()):
            if not rule.methods or method in rule.methods:
                return rule
        return None

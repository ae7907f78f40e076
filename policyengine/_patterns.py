"""Patterns a policy supplies (``match.message_regex``, ``hints.sources[].message``):
safe by construction. Each is checked when the policy loads, and refused (a
``PolicyError`` naming the file and key path) when matching it could take
more than quadratic time in the length of a message; each is searched in at
most ``MAX_SEARCHED_CHARS`` characters.

The check reads the pattern as Python's own parser does and builds its
position automaton (Glushkov's construction: one state per character the
pattern can match). Python's matcher backtracks through every run of that
automaton over a message that fails to match, so its work is bounded by the
number of runs. A pattern is refused when that number can grow with the
message:

- exponentially: two different runs from a state back to itself over the
  same text, as in ``(a+)+``, ``(\\w+\\s?)+``, ``(a|ab)*`` (nested repeats
  whose parts overlap);
- polynomially: a run from state p back to p, one from p to another state
  q, and one from q back to q, all over the same text, as in ``.*a.*b`` or
  ``\\d+\\d+`` (repeats in a row that can take the same characters).

What is left is finitely ambiguous: a bounded number of runs at any length,
so searching a message of n characters costs O(n^2) at worst (every start,
each at most a scan). Bounded repeats (``{1,9}``) count as unbounded for the
check, which errs on the side of refusing. Backreferences and conditional
groups are refused (matching them is NP-hard in general), and so is a
lookahead with an unbounded repeat inside (it rescans the rest of the message
at every position). Character classes are compared exactly on ASCII and by kind
(word, space, other) beyond it.

Python's ``re`` keeps its parser in a private module (``re._parser``, named
``sre_parse`` before 3.11); it is the stdlib of the running interpreter, so
the check reads exactly the pattern that will run. A construct the check
does not know is refused rather than guessed at.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

if sys.version_info >= (3, 11):
    from re import _parser as _sre
else:  # pragma: no cover - Python 3.10
    import sre_parse as _sre

__all__ = [
    "MAX_ANALYSIS_STEPS",
    "MAX_PATTERN_CHARS",
    "MAX_SEARCHED_CHARS",
    "UnsafePattern",
    "check_pattern",
    "search",
]

#: A pattern longer than this is refused: a message matcher needs far less.
MAX_PATTERN_CHARS = 1000
#: A pattern is searched in at most this many characters of a message (the
#: length messages are cut to, ``_errorbody.MAX_MESSAGE_CHARS``).
MAX_SEARCHED_CHARS = 2000
#: The check gives up on (and refuses) a pattern whose automaton takes more
#: steps than this to explore; real patterns take a few hundred.
MAX_ANALYSIS_STEPS = 200_000


class UnsafePattern(ValueError):
    """A pattern matching could take too long; ``str()`` says why and what to write."""


def search(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pattern.search`` on the first ``MAX_SEARCHED_CHARS`` characters of ``text``."""
    return pattern.search(text, 0, MAX_SEARCHED_CHARS)


# --- Character sets: bits 0-127 ASCII; beyond, a bit per kind of character
# (word, space, other), and one for each of the four non-ASCII letters that
# IGNORECASE matches to an ASCII letter (the Kelvin sign, long s, dotless i,
# dotted capital I).
_WORD, _SPACE, _OTHER = 1 << 128, 1 << 129, 1 << 130
_FOLDS = {
    0x212A: ("k", 1 << 131),
    0x017F: ("s", 1 << 132),
    0x0131: ("i", 1 << 133),
    0x0130: ("i", 1 << 134),
}
_FOLDED: dict[str, int] = {}
for _letter, _bit in _FOLDS.values():
    _FOLDED[_letter] = _FOLDED.get(_letter, 0) | _bit
_WORDS_WIDE = _WORD | sum(bit for _, bit in _FOLDS.values())
_NON_ASCII = _WORDS_WIDE | _SPACE | _OTHER
_ALL = (1 << 135) - 1


def _ascii(test: Any) -> int:
    return sum(1 << c for c in range(128) if test(chr(c)))


_DIGITS = _ascii(str.isdigit)
_WORDS = _ascii(lambda c: c.isalnum() or c == "_")
_SPACES = _ascii(lambda c: c in " \t\n\r\f\v\x1c\x1d\x1e\x1f")
_ASCII_ALL = (1 << 128) - 1
_IGNORECASE, _DOTALL, _ASCII_FLAG = re.IGNORECASE.value, re.DOTALL.value, re.ASCII.value


def _category(name: str, flags: int) -> tuple[int, int]:
    """The characters of ``\\d``, ``\\W``... (parsed as ``CATEGORY_DIGIT``...),
    and the kinds beyond ASCII it holds whole (``\\d`` holds some word characters)."""
    wide = _WORDS_WIDE | _SPACE | _OTHER if not flags & _ASCII_FLAG else 0
    kind = name.replace("CATEGORY_", "", 1).replace("UNI_", "", 1).replace("LOC_", "", 1)
    folds = _WORDS_WIDE & ~_WORD
    table = {
        "DIGIT": (_DIGITS | (_WORD & wide), 0),
        "NOT_DIGIT": ((_ASCII_ALL & ~_DIGITS) | _NON_ASCII, _SPACE | _OTHER | folds),
        "WORD": (_WORDS | (_WORDS_WIDE & wide), _WORDS_WIDE & wide),
        "NOT_WORD": ((_ASCII_ALL & ~_WORDS) | (_NON_ASCII & ~(_WORDS_WIDE & wide)),) * 2,
        "SPACE": (_SPACES | (_SPACE & wide), _SPACE & wide),
        "NOT_SPACE": ((_ASCII_ALL & ~_SPACES) | (_NON_ASCII & ~(_SPACE & wide)),) * 2,
    }
    bits, whole = table.get(kind, (_ALL, _NON_ASCII))  # LINEBREAK, anything new: anything
    return bits, whole & _NON_ASCII


def _char(code: int, flags: int) -> int:
    ignore = bool(flags & _IGNORECASE)
    if code >= 128:
        if code in _FOLDS:
            letter, bit = _FOLDS[code]
            return bit | ((1 << ord(letter)) | (1 << ord(letter.upper())) if ignore else 0)
        c = chr(code)
        return _SPACE if c.isspace() else _WORD if (c.isalnum() or c == "_") else _OTHER
    bits = 1 << code
    if ignore and chr(code).isalpha():
        lower = chr(code).lower()
        bits |= (1 << ord(chr(code).swapcase())) | _FOLDED.get(lower, 0)
    return bits


def _range(low: int, high: int, flags: int) -> int:
    bits = 0
    for c in range(low, min(high, 127) + 1):
        bits |= _char(c, flags)
    if high >= 128:  # some characters of each kind, and the folded letters it holds
        bits |= _WORD | _SPACE | _OTHER
        bits |= sum(_char(c, flags) for c in _FOLDS if low <= c <= high)
    return bits


# --- The position automaton ----------------------------------------------------


class Unsafe(NamedTuple):
    why: str


class _Automaton:
    """Positions (state 0 is the start), the characters each reads, which
    positions may follow which, and the steps the pattern allows in more than
    one way (``(a+)+`` steps from a to a by the inner or the outer repeat: a
    backtracking matcher tries both)."""

    def __init__(self) -> None:
        self.chars: list[int] = [0]
        self.follow: list[set[int]] = [set()]
        self.twice: set[tuple[int, int]] = set()

    def position(self, chars: int) -> int:
        self.chars.append(chars)
        self.follow.append(set())
        return len(self.chars) - 1

    def link(self, sources: Iterable[int], targets: frozenset[int]) -> None:
        for p in sources:
            follow = self.follow[p]
            self.twice.update((p, q) for q in targets & follow)
            follow |= targets


class _Fragment(NamedTuple):
    nullable: bool
    first: frozenset[int]
    last: frozenset[int]


_EMPTY = _Fragment(True, frozenset(), frozenset())


class _Refused(Exception):
    pass


def _op(code: object) -> str:
    return str(getattr(code, "name", code))


class _Builder:
    def __init__(self) -> None:
        self.a = _Automaton()

    def sequence(self, items: Iterable[tuple[Any, Any]], flags: int) -> _Fragment:
        nullable, first, last = True, frozenset[int](), frozenset[int]()
        for op, av in items:
            f = self.node(_op(op), av, flags)
            self.a.link(last, f.first)
            if nullable:
                first = first | f.first
            last = (last | f.last) if f.nullable else f.last
            nullable = nullable and f.nullable
        return _Fragment(nullable, first, last)

    def node(self, op: str, av: Any, flags: int) -> _Fragment:
        if op in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            chars = self.chars(op, av, flags)
            p = self.a.position(chars)
            return _Fragment(False, frozenset({p}), frozenset({p}))
        if op == "SUBPATTERN":
            _group, add, remove, sub = av
            return self.sequence(sub, (flags | add) & ~remove)
        if op == "ATOMIC_GROUP":
            return self.sequence(av, flags)
        if op == "BRANCH":
            parts = [self.sequence(branch, flags) for branch in av[1]]
            return _Fragment(
                any(f.nullable for f in parts),
                frozenset().union(*(f.first for f in parts)),
                frozenset().union(*(f.last for f in parts)),
            )
        if op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            if high == 0:
                return _EMPTY
            f = self.sequence(sub, flags)
            if high > 1:  # bounded or not, a loop for the check
                self.a.link(f.last, f.first)
            return _Fragment(f.nullable or low == 0, f.first, f.last)
        if op == "AT":
            return _EMPTY
        if op in ("ASSERT", "ASSERT_NOT"):
            direction, sub = av
            if direction > 0 and _repeats(sub):
                raise _Refused(
                    "a lookahead with an unbounded repeat inside rescans the rest of the "
                    "message at every position; match the words with match.message, or bound "
                    "the repeat ((?=.{0,100}x))"
                )
            return _EMPTY
        if op in ("GROUPREF", "GROUPREF_EXISTS"):
            raise _Refused(
                "backreferences ((?P=name), \\1) and conditional groups ((?(1)...)) can take "
                "exponential time; match the text itself instead"
            )
        raise _Refused(f"the construct {op} is not supported in a policy pattern")

    def chars(self, op: str, av: Any, flags: int) -> int:
        if op == "LITERAL":
            return _char(av, flags)
        if op == "NOT_LITERAL":
            return (_ASCII_ALL & ~_char(av, flags)) | _NON_ASCII
        if op == "ANY":
            return _ALL if flags & _DOTALL else _ALL & ~(1 << 10)
        # ``whole``: the kinds beyond ASCII the set holds entirely (from \\w, \\s...;
        # the letters IGNORECASE folds are one character each), so that a
        # negated set leaves them out: [^\\s] holds no space of any script.
        bits, whole, negate = 0, 0, False
        for item_op, item in av:
            name = _op(item_op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                bits |= _char(item, flags)
            elif name == "RANGE":
                bits |= _range(item[0], item[1], flags)
            elif name == "CATEGORY":
                more, entire = _category(_op(item), flags)
                bits, whole = bits | more, whole | entire
            else:
                bits, whole = _ALL, _NON_ASCII
        whole |= bits & (_WORDS_WIDE & ~_WORD)
        return ((_ASCII_ALL & ~bits) | (_NON_ASCII & ~whole)) if negate else bits


def _repeats(items: Iterable[tuple[Any, Any]]) -> bool:
    """Whether a parsed pattern holds an unbounded repeat (``*``, ``+``, ``{2,}``)."""
    for op, av in items:
        name = _op(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and av[1] == _sre.MAXREPEAT:
            return True
        subs: list[Any] = []
        if name == "SUBPATTERN":
            subs = [av[3]]
        elif name == "BRANCH":
            subs = list(av[1])
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            subs = [av[2]]
        elif name in ("ASSERT", "ASSERT_NOT"):
            subs = [av[1]]
        elif name == "ATOMIC_GROUP":
            subs = [av]
        if any(_repeats(sub) for sub in subs):
            return True
    return False


# --- Ambiguity ---------------------------------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_ANALYSIS_STEPS

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise _Refused(
                f"it is too complex to check (more than {MAX_ANALYSIS_STEPS:,} steps); "
                "split it into simpler patterns or rules"
            )


def _pairs(a: _Automaton, budget: _Budget) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """The pairs of states two runs over the same text can be in, from the
    start, and their successors."""
    graph: dict[tuple[int, int], list[tuple[int, int]]] = {}
    stack = [(0, 0)]
    while stack:
        node = stack.pop()
        if node in graph:
            continue
        p, q = node
        nxt = [(x, y) for x in a.follow[p] for y in a.follow[q] if a.chars[x] & a.chars[y]]
        budget.spend(len(a.follow[p]) * len(a.follow[q]) + 1)
        graph[node] = nxt
        stack.extend(n for n in nxt if n not in graph)
    return graph


def _components(graph: dict[tuple[int, int], list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
    """Strongly connected components (Tarjan's, without recursion)."""
    index: dict[tuple[int, int], int] = {}
    low: dict[tuple[int, int], int] = {}
    on_stack: set[tuple[int, int]] = set()
    stack: list[tuple[int, int]] = []
    found: list[list[tuple[int, int]]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            succ = graph[node]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found


def _exponential(a: _Automaton, graph: dict[tuple[int, int], list[tuple[int, int]]]) -> bool:
    """Two different runs from a state back to itself over the same text: a
    component of the pair graph holding a pair (p, p) and either a pair
    (q, r), q != r, or a step (q, q) -> (r, r) the pattern allows two ways."""
    for component in _components(graph):
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue  # no cycle
        if not any(p == q for p, q in component):
            continue
        if any(p != q for p, q in component):
            return True
        if any(
            (p, x) in a.twice for p, _ in component for x, _ in graph[(p, p)] if (x, x) in members
        ):
            return True
    return False


def _polynomial(
    a: _Automaton, pairs: dict[tuple[int, int], list[tuple[int, int]]], budget: _Budget
) -> bool:
    """States p != q with runs p -> p, p -> q and q -> q over one same text."""
    graph = pairs
    reached = {p for pair in graph for p in pair}
    looping = [p for p in sorted(reached) if p and _returns(a, p, budget)]
    for p in looping:
        # Runs p -> p and p -> q over one text: (p, q) is reached from (p, p).
        from_p = _reach(graph, (p, p), budget)
        for q in looping:
            if p != q and (p, q) in from_p and _triple_path(a, (p, p, q), (p, q, q), budget):
                return True
    return False


def _reach(
    graph: dict[tuple[int, int], list[tuple[int, int]]], start: tuple[int, int], budget: _Budget
) -> set[tuple[int, int]]:
    """The pairs reached from ``start`` in one step or more."""
    seen: set[tuple[int, int]] = set()
    stack = list(graph.get(start, ()))
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        budget.spend()
        stack.extend(graph.get(node, ()))
    return seen


def _returns(a: _Automaton, p: int, budget: _Budget) -> bool:
    seen: set[int] = set()
    stack = list(a.follow[p])
    while stack:
        x = stack.pop()
        if x == p:
            return True
        if x in seen:
            continue
        seen.add(x)
        budget.spend()
        stack.extend(a.follow[x])
    return False


def _triple_path(
    a: _Automaton, start: tuple[int, int, int], goal: tuple[int, int, int], budget: _Budget
) -> bool:
    seen = {start}
    stack = [start]
    while stack:
        p, q, r = stack.pop()
        budget.spend(len(a.follow[p]) * len(a.follow[q]) * len(a.follow[r]) + 1)
        for x in a.follow[p]:
            for y in a.follow[q]:
                common = a.chars[x] & a.chars[y]
                if not common:
                    continue
                for z in a.follow[r]:
                    if common & a.chars[z]:
                        node = (x, y, z)
                        if node == goal:
                            return True
                        if node not in seen:
                            seen.add(node)
                            stack.append(node)
    return False


_EXPONENTIAL = (
    "{pattern!r} has nested repeats that can match the same text in more than one way, "
    "which takes exponential time on a long message; make the parts of each repeat "
    "exclusive: (\\w+\\s?)+ -> [\\w\\s]+, (a+)+ -> a+, (a|aa)+ -> a+"
)
_POLYNOMIAL = (
    "{pattern!r} has repeats one after the other that can take the same characters "
    "(as .*a.*b or \\d+\\d+ do), which takes cubic time or worse on a long message; "
    "keep each repeat off what follows it: .*a.*b -> [^a]*a.*b, or match the words "
    "with match.message"
)


@functools.lru_cache(maxsize=256)
def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is refused (with what to write instead), or None when
    it is safe; see the module docstring. Assumes it compiles."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return (
            f"the pattern is {len(pattern):,} characters long, more than "
            f"{MAX_PATTERN_CHARS:,}; split it into several rules"
        )
    try:
        parsed = _sre.parse(pattern)
        builder = _Builder()
        start = builder.sequence(parsed.data, parsed.state.flags)
        builder.a.link((0,), start.first)
        budget = _Budget()
        pairs = _pairs(builder.a, budget)
        if _exponential(builder.a, pairs):
            return _EXPONENTIAL.format(pattern=pattern)
        if _polynomial(builder.a, pairs, budget):
            return _POLYNOMIAL.format(pattern=pattern)
    except _Refused as e:
        return f"{pattern!r}: {e}"
    except (re.error, RecursionError, OverflowError):
        return f"{pattern!r} is not a regular expression this check can read"
    return None

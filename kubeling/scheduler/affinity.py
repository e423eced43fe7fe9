"""Node selection by labels and fields: `nodeSelector` and `affinity.nodeAffinity`.

Contract (Kubernetes 1.32, `component-helpers/scheduling/corev1/nodeaffinity`):

- `spec.nodeSelector`: every key must be present with exactly that value.
- `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`: the terms are ORed; inside
  a term, every `matchExpressions` entry (node labels) and every `matchFields` entry (only
  `metadata.name`) must hold. A term with neither matches nothing, and so does a required
  affinity with no terms. A term that does not parse (e.g. `Gt` with two values, `In` with none,
  `matchFields` on another key) matches nothing; the other terms still count.
- Operators: `In` (key present, value listed), `NotIn` (key absent, or value not listed),
  `Exists`, `DoesNotExist`, `Gt` / `Lt` (key present, value parses as a base-10 int64, compared
  with the single integer given). `matchFields` supports `In` / `NotIn` with exactly one value.
- Both nodeSelector and required affinity must hold when both are given.
- `preferredDuringSchedulingIgnoredDuringExecution`: a node scores the sum of the `weight`s of the
  terms it matches; weight-0 terms are skipped.
- PreFilter: when every required term pins `metadata.name In [...]`, only those nodes are
  examined (this is how DaemonSet Pods are placed); the others are reported as
  `node(s) didn't satisfy plugin(s) [NodeAffinity]`. If the pinned sets are empty the Pod fits
  nowhere: "pod affinity terms conflict".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

NAME_FIELD = "metadata.name"
_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1


class Requirement(NamedTuple):
    key: str
    operator: str
    values: frozenset[str]
    number: int  # the bound of Gt / Lt


@dataclass(frozen=True, slots=True)
class Term:
    """One parsed `NodeSelectorTerm` that can match (empty and invalid terms become None)."""

    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        for requirement in self.expressions:
            if not _label_matches(requirement, labels):
                return False
        for requirement in self.fields:
            if (name in requirement.values) != (requirement.operator == "In"):
                return False
        return True


def _parse_int64(text: str) -> int | None:
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if -_INT64_MAX - 1 <= number <= _INT64_MAX else None


def _label_matches(requirement: Requirement, labels: Mapping[str, str]) -> bool:
    operator = requirement.operator
    value = labels.get(requirement.key)
    if operator == "In":
        return value is not None and value in requirement.values
    if operator == "NotIn":
        return value is None or value not in requirement.values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if value is None:
        return False
    have = _parse_int64(value)
    if have is None:
        return False
    return have > requirement.number if operator == "Gt" else have < requirement.number


def _expression(raw: Mapping[str, Any]) -> Requirement | None:
    key = str(raw.get("key") or "")
    operator = str(raw.get("operator") or "")
    values = [str(v) for v in raw.get("values") or ()]
    if not key:
        return None
    if operator in ("In", "NotIn"):
        return Requirement(key, operator, frozenset(values), 0) if values else None
    if operator in ("Exists", "DoesNotExist"):
        return None if values else Requirement(key, operator, frozenset(), 0)
    if operator in ("Gt", "Lt") and len(values) == 1:
        number = _parse_int64(values[0])
        return None if number is None else Requirement(key, operator, frozenset(), number)
    return None


def _field(raw: Mapping[str, Any]) -> Requirement | None:
    operator = raw.get("operator")
    values = [str(v) for v in raw.get("values") or ()]
    if raw.get("key") != NAME_FIELD or operator not in ("In", "NotIn") or len(values) != 1:
        return None
    return Requirement(NAME_FIELD, str(operator), frozenset(values), 0)


def compile_term(raw: Mapping[str, Any] | None) -> Term | None:
    """A `NodeSelectorTerm`, or None when it is empty or does not parse (it matches nothing)."""
    if not raw:
        return None
    raw_expressions = raw.get("matchExpressions") or ()
    raw_fields = raw.get("matchFields") or ()
    if not raw_expressions and not raw_fields:
        return None
    expressions = [_expression(item) for item in raw_expressions]
    fields = [_field(item) for item in raw_fields]
    if any(item is None for item in expressions) or any(item is None for item in fields):
        return None
    return Term(
        tuple(item for item in expressions if item is not None),
        tuple(item for item in fields if item is not None),
    )


@dataclass(frozen=True, slots=True)
class RequiredAffinity:
    """nodeSelector plus required node affinity; `terms` None means no required affinity."""

    node_selector: tuple[tuple[str, str], ...]
    terms: tuple[Term | None, ...] | None

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        for key, value in self.node_selector:
            if labels.get(key) != value:
                return False
        if self.terms is None:
            return True
        return any(term is not None and term.matches(labels, name) for term in self.terms)


def _node_affinity(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def required_affinity(pod: Mapping[str, Any]) -> RequiredAffinity | None:
    """What the NodeAffinity filter checks, or None when the Pod constrains nothing."""
    selector = (pod.get("spec") or {}).get("nodeSelector")
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not selector and required is None:
        return None
    terms = None
    if required is not None:
        terms = tuple(compile_term(raw) for raw in required.get("nodeSelectorTerms") or ())
    pairs = tuple((str(k), str(v)) for k, v in (selector or {}).items())
    return RequiredAffinity(pairs, terms)


def preferred_terms(pod: Mapping[str, Any]) -> tuple[tuple[int, Term], ...]:
    """(weight, term) of the preferred terms that can score; weight-0 and invalid ones dropped."""
    result = []
    for raw in _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or ():
        weight = raw.get("weight") or 0
        term = compile_term(raw.get("preference"))
        if isinstance(weight, int) and weight and term is not None:
            result.append((weight, term))
    return tuple(result)


def pinned_node_names(pod: Mapping[str, Any]) -> frozenset[str] | None:
    """The NodeAffinity PreFilter: node names the Pod is pinned to, or None (all nodes).

    An empty set means the terms conflict and no node can match.
    """
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    terms = (required or {}).get("nodeSelectorTerms") or ()
    if not terms:
        return None
    names: set[str] = set()
    for term in terms:
        pinned: set[str] | None = None
        for field in (term or {}).get("matchFields") or ():
            if field.get("key") == NAME_FIELD and field.get("operator") == "In":
                values = {str(v) for v in field.get("values") or ()}
                pinned = values if pinned is None else pinned & values
        if pinned is None:
            return None  # this term does not pin names, and terms are ORed
        names |= pinned
    return frozenset(names)

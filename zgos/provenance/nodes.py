"""The nodes of a lineage graph and the checks each one lists (see :mod:`zgos.provenance.graph`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    name: str
    ok: bool | None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Node:
    kind: str  # response | agent | model | task | dataset | deliverable | account
    id: str
    label: str
    facts: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(c.ok is True for c in self.checks)

    def check(self, name: str, ok: bool | None, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok is True

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "label": self.label, "verified": self.verified,
                "facts": self.facts, "checks": [c.to_json() for c in self.checks],
                "children": [c.to_json() for c in self.children]}

    def walk(self) -> list[Node]:
        return [self, *(n for child in self.children for n in child.walk())]

"""A lab's kit settings as the ingestion needs them (API.md ``kit``), and the check
that every target the kit names is one the formats can read (ORF1ab, N, E, and an
internal control). Pure: no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab_io.formats.common import canonical_target

READABLE_TARGETS = ("ORF1ab", "N", "E")
CONTROL_TARGET = "IC"


class UnreadableKit(ValueError):
    """A kit naming a target (or control, or dye mapping) the formats cannot read."""


@dataclass(frozen=True, slots=True)
class KitRule:
    targets: tuple[str, ...]
    control: str | None
    positive_ct_max: float
    grey_ct_max: float | None
    control_ct_max: float
    dyes: dict[str, str]

    @classmethod
    def from_kit(cls, kit: Mapping[str, Any]) -> KitRule:
        """The rule for ``kit``; :class:`UnreadableKit` naming what cannot be read."""
        targets = tuple(canonical_target(t) for t in kit.get("targets", ["ORF1ab", "N"]))
        unsupported = [
            raw
            for raw, t in zip(kit.get("targets", []), targets, strict=False)
            if t not in READABLE_TARGETS
        ]
        if unsupported:
            raise UnreadableKit(
                f"kit targets {', '.join(map(str, unsupported))} cannot be read; use"
                f" {', '.join(READABLE_TARGETS)}"
            )
        if len(set(targets)) != len(targets):
            raise UnreadableKit("kit targets name the same gene twice")
        control = kit.get("control_target", CONTROL_TARGET)
        if control and canonical_target(control) != CONTROL_TARGET:
            raise UnreadableKit(
                f"control target {control!r} cannot be read; use IC (RP, RNaseP, 内标)"
            )
        dyes = {str(k).upper(): canonical_target(v) for k, v in kit.get("dyes", {}).items()}
        odd = [d for d, t in dyes.items() if t not in (*READABLE_TARGETS, CONTROL_TARGET)]
        if odd:
            raise UnreadableKit(f"dyes {', '.join(odd)} map to targets the formats cannot read")
        return cls(
            targets=targets,
            control=CONTROL_TARGET if control else None,
            positive_ct_max=float(kit.get("positive_ct_max", 40.0)),
            grey_ct_max=kit.get("grey_ct_max"),
            control_ct_max=float(kit.get("control_ct_max", 40.0)),
            dyes=dyes,
        )

    def known_targets(self) -> list[str]:
        return [*self.targets, *([self.control] if self.control else [])]

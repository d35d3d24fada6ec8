"""Proof of deletion: each deletion notice a partner was sent, joined with the partner's
acknowledgement of it (pure: no Kafka here; :mod:`connectors.partner.acks` reads the topics).

A notice on ``partner.<id>.notices`` tells the partner to delete a student (or some fields);
the partner's vendor answers on ``partner.<id>.acks`` with the notice id and when it deleted.
A notice without an acknowledgement is *outstanding*. Its age counts from ``retracted_at``,
the UTC day the notice was sent (day resolution on purpose, see the notice schema), so an age
is at most a day more than the exact one: a 30-day limit is never reached late.

Acknowledging twice is harmless: the first acknowledgement of a notice id counts (the earliest
``deleted_at``). An acknowledgement naming a notice the partner was never sent, or written for
another partner, proves nothing and is counted apart (:attr:`Join.stray`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.errors import HallpassError

FORMATS = ("table", "csv", "json")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"": 86_400, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


class AgeError(HallpassError, ValueError):
    """An age such as ``30d`` that cannot be read; the message says the form."""


def parse_age(text: str) -> float:
    """Seconds of an age written ``<number><unit>``: s, m, h, d (the default) or w."""
    found = _AGE.match(text)
    if found is None:
        raise AgeError(
            f"age {text!r}: write a number and a unit, e.g. 30d, 12h, 90m or 45s (d: days)"
        )
    return float(found.group(1)) * _UNIT_S[found.group(2)]


@dataclass(frozen=True)
class Notice:
    """One deletion notice, as the partner received it."""

    partner: str
    notice_id: str
    key: str
    reason: str
    retracted_at_ms: int
    categories: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ack:
    """One acknowledgement, as read from the partner's acks topic (``partner``: the topic's)."""

    partner: str
    notice_id: str
    key: str
    deleted_at_ms: int
    #: the partner the record itself names (must be the topic's)
    names_partner: str = ""


@dataclass(frozen=True)
class Retraction:
    """A notice and its first acknowledgement (None: outstanding)."""

    notice: Notice
    ack: Ack | None

    @property
    def outstanding(self) -> bool:
        return self.ack is None

    def age_s(self, now_ms: int) -> float:
        """Seconds since the notice was sent (its UTC day)."""
        return max(0.0, (now_ms - self.notice.retracted_at_ms) / 1000)


@dataclass(frozen=True)
class Join:
    retractions: tuple[Retraction, ...]
    #: acknowledgements of no notice of their partner (or naming another partner)
    stray: tuple[Ack, ...]


def join(notices: Iterable[Notice], acks: Iterable[Ack]) -> Join:
    """Each notice with its first acknowledgement, in the order of ``notices``."""
    notice_list = list(notices)
    sent = {(n.partner, n.notice_id) for n in notice_list}
    first: dict[tuple[str, str], Ack] = {}
    stray = []
    for ack in acks:
        where = (ack.partner, ack.notice_id)
        if where not in sent or (ack.names_partner and ack.names_partner != ack.partner):
            stray.append(ack)
            continue
        before = first.get(where)
        if before is None or ack.deleted_at_ms < before.deleted_at_ms:
            first[where] = ack
    seen: set[tuple[str, str]] = set()
    rows = []
    for n in notice_list:
        where = (n.partner, n.notice_id)
        if where in seen:  # a notice read twice (it never is written twice) counts once
            continue
        seen.add(where)
        rows.append(Retraction(n, first.get(where)))
    return Join(tuple(rows), tuple(stray))


def select(
    rows: Iterable[Retraction],
    now_ms: int,
    partner: str | None = None,
    unacknowledged: bool = False,
    older_than_s: float | None = None,
) -> list[Retraction]:
    """The rows of ``partner`` (None: all), only outstanding ones if ``unacknowledged``, only
    those sent more than ``older_than_s`` ago if given."""
    return [
        r
        for r in rows
        if (partner is None or r.notice.partner == partner)
        and (not unacknowledged or r.outstanding)
        and (older_than_s is None or r.age_s(now_ms) > older_than_s)
    ]


@dataclass(frozen=True)
class Outstanding:
    """One partner's outstanding acknowledgements: how many, and when the oldest was sent."""

    partner: str
    count: int = 0
    oldest_retracted_at_ms: int | None = None

    def oldest_age_s(self, now_ms: int) -> float:
        if self.oldest_retracted_at_ms is None:
            return 0.0
        return max(0.0, (now_ms - self.oldest_retracted_at_ms) / 1000)


def outstanding_by_partner(
    rows: Iterable[Retraction], partners: Iterable[str] = ()
) -> dict[str, Outstanding]:
    """Per partner (every one of ``partners``, and every one with a notice), its outstanding
    acknowledgements; a partner with none has count 0."""
    found: dict[str, Outstanding] = {p: Outstanding(p) for p in partners}
    for r in rows:
        current = found.setdefault(r.notice.partner, Outstanding(r.notice.partner))
        if not r.outstanding:
            continue
        sent = r.notice.retracted_at_ms
        oldest = current.oldest_retracted_at_ms
        found[current.partner] = Outstanding(
            current.partner, current.count + 1, sent if oldest is None else min(oldest, sent)
        )
    return dict(sorted(found.items()))


# -- rendering ---------------------------------------------------------------------------

COLUMNS = (
    "partner",
    "notice_id",
    "partner_student_key",
    "reason",
    "retracted_at",
    "status",
    "deleted_at",
    "age_days",
)


def _iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def row(r: Retraction, now_ms: int) -> dict[str, Any]:
    """One retraction as the report shows it: ``age_days`` since the notice was sent."""
    n = r.notice
    return {
        "partner": n.partner,
        "notice_id": n.notice_id,
        "partner_student_key": n.key,
        "reason": n.reason,
        "retracted_at": _iso(n.retracted_at_ms),
        "status": "outstanding" if r.ack is None else "acknowledged",
        "deleted_at": _iso(None if r.ack is None else r.ack.deleted_at_ms),
        "age_days": round(r.age_s(now_ms) / 86_400, 2),
        "categories": list(n.categories),
        "fields": list(n.fields),
    }


def render(
    rows: Sequence[Retraction],
    now_ms: int,
    fmt: str,
    summary: Mapping[str, Outstanding] | None = None,
) -> str:
    """``rows`` as a table, CSV or JSON (with the per-partner summary in the JSON)."""
    shown = [row(r, now_ms) for r in rows]
    if fmt == "json":
        out: dict[str, Any] = {"retractions": shown}
        if summary is not None:
            out["outstanding"] = {
                p: {"count": o.count, "oldest_age_seconds": round(o.oldest_age_s(now_ms))}
                for p, o in summary.items()
            }
        return json.dumps(out, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(shown)
        return buffer.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    cells = [[c.upper().replace("_", "-") for c in COLUMNS]]
    cells += [[str(s[c]) if s[c] != "" else "-" for c in COLUMNS] for s in shown]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return "\n".join(lines)

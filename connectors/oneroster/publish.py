"""Publishing a read package: only what changed, withdrawals behind a guard, state after acks.

:func:`publish_result` sends every event whose content fingerprint differs from the one last
delivered for its key (UPSERTs and DELETEs alike, so a re-run publishes nothing), records each
acknowledged one in the source's state store, and once the broker acknowledged everything
commits the package's entities to the store (a failed run leaves the state as it was, and the
re-run rebuilds the same events).

The withdrawals of a bulk (students delivered before and missing now) are sent only when they
are at most ``max_share`` of the students delivered before, or when confirmed: a truncated
export must not withdraw half a district. When held back, the state is not advanced either,
so the next run sees the same withdrawals.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.oneroster.reader import PackageReadResult, StudentEvent
from connectors.source.publisher import DeliveryReport
from connectors.source.state import SourceStateStore, fingerprint


class Publisher(Protocol):
    """What :func:`publish_result` needs of :class:`~connectors.source.publisher.EventPublisher`."""

    def publish(
        self,
        topic: str,
        key: str,
        record: Mapping[str, Any],
        on_delivered: Callable[[], None] | None = None,
    ) -> None: ...

    def close(self, timeout_s: float = 60.0) -> DeliveryReport: ...


@dataclass(frozen=True)
class PublishOutcome:
    """What a publish did; ``acknowledged`` counts every record the broker confirmed."""

    acknowledged: int
    unchanged: int
    withdrawn: int
    held_withdrawals: int
    guard: str | None

    @property
    def withdrawals_held(self) -> bool:
        return self.held_withdrawals > 0


def withdrawal_guard(result: PackageReadResult, max_share: float, confirmed: bool) -> str | None:
    """Why the withdrawals of ``result`` are held back, or None when they may go."""
    count, before = len(result.withdrawals), result.live_before
    if not count or confirmed:
        return None
    share = count / max(before, 1)
    if share <= max_share:
        return None
    return (
        f"{count} of the {before} students published before ({share:.0%}) are missing from "
        f"this bulk export, more than the {max_share:.0%} allowed: nothing was withdrawn. If "
        "the export is complete, run again with --confirm-withdrawals (or raise "
        "withdrawals.max_share in the source configuration)"
    )


def publish_result(
    result: PackageReadResult,
    store: SourceStateStore,
    publisher: Publisher,
    topic: str,
    *,
    max_share: float = 0.10,
    confirm_withdrawals: bool = False,
    tick: Callable[[int, int], None] | None = None,
    on_unchanged: Callable[[], None] | None = None,
) -> PublishOutcome:
    """Publish the changed events of ``result`` (see the module doc); raises the publisher's
    :class:`~connectors.source.publisher.PublishError` when not everything was acknowledged."""
    guard = withdrawal_guard(result, max_share, confirm_withdrawals)
    events: list[StudentEvent] = list(result.events)
    if guard is None:
        events += result.withdrawals
    known = store.fingerprints()
    unchanged = result.already_deleted
    sent_withdrawals = 0
    withdrawn_keys = {e.key for e in result.withdrawals}
    for done, event in enumerate(events, 1):
        fp = event.fingerprint or fingerprint(event.value)
        if known.get(event.key) == fp:
            unchanged += 1
            if on_unchanged is not None:
                on_unchanged()
            continue
        value = event.value
        on_delivered = functools.partial(
            store.mark_delivered,
            event.key,
            fp,
            event.operation,
            result.sourced_ids.get(event.key),
            value.get("district_id"),
            value.get("school_id"),
        )
        publisher.publish(topic, event.key, value, on_delivered)
        if event.key in withdrawn_keys and event.operation == "DELETE":
            sent_withdrawals += 1
        if tick is not None:
            tick(done, len(events))
    report = publisher.close()
    store.flush()
    if guard is None:
        store.commit_entities(result.changes)
    return PublishOutcome(
        acknowledged=report.acknowledged,
        unchanged=unchanged,
        withdrawn=sent_withdrawals,
        held_withdrawals=0 if guard is None else len(result.withdrawals),
        guard=guard,
    )

"""Proof of deletion (issue 19): notices joined with the partners' acknowledgements, what is
outstanding per partner and since when, and the report's formats."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from connectors.partner.acks import AckCollector, AckSnapshot
from streams.cli import main
from streams.policy.retractions import (
    Ack,
    AgeError,
    Notice,
    join,
    outstanding_by_partner,
    parse_age,
    render,
    select,
)

DAY_MS = 86_400_000
NOW = 100 * DAY_MS + 3_600_000  # 01:00 UTC on day 100


def notice(partner: str, nid: str, day: int, key: str = "k") -> Notice:
    return Notice(partner, nid, key, "PARTNER_OPT_OUT", day * DAY_MS)


def ack(partner: str, nid: str, at_day: float, names: str = "") -> Ack:
    return Ack(partner, nid, "k", int(at_day * DAY_MS), names or partner)


NOTICES = [
    notice("learnwell", "n1", 60),
    notice("learnwell", "n2", 95),
    notice("measurely", "m1", 50),
    notice("measurely", "m2", 99),
]


def test_a_notice_without_acknowledgement_is_outstanding_and_acked_ones_are_not() -> None:
    joined = join(NOTICES, [ack("learnwell", "n1", 61), ack("learnwell", "n2", 96)])
    assert [(r.notice.notice_id, r.outstanding) for r in joined.retractions] == [
        ("n1", False),
        ("n2", False),
        ("m1", True),
        ("m2", True),
    ]
    assert joined.stray == ()


def test_acknowledging_twice_is_harmless_the_first_deletion_counts() -> None:
    joined = join(NOTICES[:1], [ack("learnwell", "n1", 70), ack("learnwell", "n1", 61)])
    [only] = joined.retractions
    assert only.ack is not None and only.ack.deleted_at_ms == 61 * DAY_MS
    assert joined.stray == ()


def test_an_ack_of_another_partners_notice_or_of_no_notice_proves_nothing() -> None:
    forged = ack("measurely", "n1", 61)  # measurely cannot acknowledge learnwell's notice
    misnamed = ack("learnwell", "n2", 96, names="measurely")
    unknown = ack("learnwell", "nope", 61)
    joined = join(NOTICES, [forged, misnamed, unknown])
    assert all(r.outstanding for r in joined.retractions)
    assert joined.stray == (forged, misnamed, unknown)


def test_select_by_partner_unacknowledged_and_age() -> None:
    rows = join(NOTICES, [ack("learnwell", "n1", 61)]).retractions
    ids = [r.notice.notice_id for r in select(rows, NOW, unacknowledged=True)]
    assert ids == ["n2", "m1", "m2"]
    ids = [r.notice.notice_id for r in select(rows, NOW, partner="learnwell")]
    assert ids == ["n1", "n2"]
    # sent more than 30 days ago (day 100 01:00 minus 30 days is day 70 01:00)
    ids = [r.notice.notice_id for r in select(rows, NOW, older_than_s=parse_age("30d"))]
    assert ids == ["n1", "m1"]
    old_and_open = select(rows, NOW, unacknowledged=True, older_than_s=30 * 86_400)
    assert [r.notice.notice_id for r in old_and_open] == ["m1"]


def test_outstanding_per_partner_counts_and_dates_the_oldest() -> None:
    rows = join(NOTICES, [ack("learnwell", "n1", 61), ack("learnwell", "n2", 96)]).retractions
    summary = outstanding_by_partner(rows, partners=["carewell-health"])
    assert {p: (o.count, o.oldest_age_s(NOW)) for p, o in summary.items()} == {
        "carewell-health": (0, 0.0),  # no notice yet: nothing outstanding
        "learnwell": (0, 0.0),
        "measurely": (2, (NOW - 50 * DAY_MS) / 1000),
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86_400), ("12h", 43_200), ("90m", 5400), ("45s", 45), ("2w", 14 * 86_400)],
)
def test_ages_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "thirty days", "30x", "-1d"])
def test_an_unreadable_age_says_the_form(text: str) -> None:
    with pytest.raises(AgeError, match=r"e\.g\. 30d"):
        parse_age(text)


def test_the_report_as_table_csv_and_json() -> None:
    rows = join(NOTICES[:2], [ack("learnwell", "n1", 61.5)]).retractions
    table = render(list(rows), NOW, "table").splitlines()
    assert table[0].split() == [
        "PARTNER",
        "NOTICE-ID",
        "PARTNER-STUDENT-KEY",
        "REASON",
        "RETRACTED-AT",
        "STATUS",
        "DELETED-AT",
        "AGE-DAYS",
    ]
    assert table[1].split()[4:] == [
        "1970-03-02T00:00:00Z",
        "acknowledged",
        "1970-03-03T12:00:00Z",
        "40.04",
    ]
    assert table[2].split()[5:] == ["outstanding", "-", "5.04"]

    parsed = list(csv.DictReader(io.StringIO(render(list(rows), NOW, "csv"))))
    assert [(r["notice_id"], r["status"], r["deleted_at"]) for r in parsed] == [
        ("n1", "acknowledged", "1970-03-03T12:00:00Z"),
        ("n2", "outstanding", ""),
    ]

    out = json.loads(render(list(rows), NOW, "json", outstanding_by_partner(rows)))
    assert [r["status"] for r in out["retractions"]] == ["acknowledged", "outstanding"]
    assert out["outstanding"] == {"learnwell": {"count": 1, "oldest_age_seconds": 435_600}}


def test_the_exporter_serves_outstanding_acks_per_partner_aged_at_scrape_time() -> None:
    rows = join(NOTICES, [ack("learnwell", "n1", 61), ack("learnwell", "n2", 96)]).retractions
    snapshot = AckSnapshot(outstanding_by_partner(rows), stray=1)
    registry = CollectorRegistry()
    registry.register(AckCollector(lambda: snapshot, now_ms=lambda: NOW))
    get = registry.get_sample_value
    assert get("hallpass_deletion_acks_outstanding", {"partner": "measurely"}) == 2
    assert get("hallpass_deletion_acks_outstanding", {"partner": "learnwell"}) == 0
    oldest = "hallpass_deletion_ack_oldest_outstanding_seconds"
    assert get(oldest, {"partner": "measurely"}) == (NOW - 50 * DAY_MS) / 1000
    assert get(oldest, {"partner": "learnwell"}) == 0
    assert get("hallpass_deletion_acks_stray") == 1


def test_a_bad_age_is_one_line_without_a_traceback() -> None:
    result = CliRunner().invoke(main, ["retractions", "--older-than", "a month"])
    assert result.exit_code == 2
    assert "write a number and a unit, e.g. 30d" in result.output
    assert "Traceback" not in result.output

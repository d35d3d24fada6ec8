"""Topic names under a deployment prefix."""

from __future__ import annotations

import pytest

from streams.kafka.names import DEFAULT_TOPICS, Topics, topics_from


def test_no_prefix_keeps_the_documented_names() -> None:
    assert DEFAULT_TOPICS.changes == "sis.student.changes"
    assert DEFAULT_TOPICS.consent == "consent.events"
    assert topics_from({}) == DEFAULT_TOPICS


def test_prefix_applies_to_every_name() -> None:
    topics = topics_from({"HALLPASS_TOPIC_PREFIX": "district7."})
    assert topics.changes == "district7.sis.student.changes"
    assert topics.name("partner.learnwell.students") == "district7.partner.learnwell.students"
    assert topics.processor_group.startswith("district7.")


def test_bad_prefix_is_refused_with_what_to_use() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        Topics("no spaces/allowed")

"""Kafka and schema-registry plumbing: topic names (pure), topic administration, the
Confluent wire format, reading topics to their end, the round-trip probe."""

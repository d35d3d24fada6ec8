"""The consent-aware processor: a transactional consume-transform-produce loop.

``loop``     Kafka I/O: consume, produce outputs and offsets in one transaction, restore state.
``state``    the processor's tables (consent histories, district opt-outs, latest records,
             what each partner holds), kept in memory and in a compacted changelog topic.
``handlers`` what one input event produces: pure functions over state and contracts.
``dlq``      dead letters and the limit that halts a broken deploy.
"""

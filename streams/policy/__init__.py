"""The pure policy core: what a partner may see, and when.

Field catalog, contracts, consent histories, partner views, the decision, and the
retention each topic needs. Nothing here does I/O or imports a Kafka client.
"""

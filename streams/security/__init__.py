"""Partner isolation: the Kafka ACLs the contracts imply, users, secure client settings."""

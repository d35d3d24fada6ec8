"""What every SIS source shares: the publisher, rejects files, the source configuration
and the stored state of a source."""

"""hallpass connectors: SIS publishers (OneRoster, simulator) and the vendor consumer."""

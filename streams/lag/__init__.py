"""Consumer lag: ``hallpass lag`` and ``hallpass lag-exporter``.

``model`` holds the pure figures and rules (lag in seconds from sampled offsets, Burrow-style
status), ``tracker`` the sample history between rounds, ``collect`` reads offsets from the
cluster, ``render`` prints a report, ``exporter`` serves it to Prometheus.
"""

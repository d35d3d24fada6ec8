"""Pieces of the SIS simulator (see :mod:`connectors.simulation.stream` for the public entry point).

Each module has one job: ``reference`` holds the built-in name lists and course catalogue,
``rates`` the proportions and their public sources, ``calendar`` the school-day clock,
``district`` builds the initial district, ``record`` turns a student into a
``StudentRecordChanged`` value, ``consent`` makes ``ConsentChanged`` values and ``changes``
drives the day-by-day stream.
"""

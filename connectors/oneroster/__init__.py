"""OneRoster 1.0, 1.1 and 1.2 CSV packages -> one ``StudentRecordChanged`` event per student.

A package is a directory or a zip of CSV files (``orgs``, ``academicSessions``, ``courses``,
``classes``, ``users``, ``roles``, ``demographics``, ``enrollments``) and, from 1.1 on,
``manifest.csv``. The jobs, one module each:

- :mod:`~connectors.oneroster.package`: the package and its manifest (version, file modes);
- :mod:`~connectors.oneroster.columns`: each version's columns, aliases and value parsing;
- :mod:`~connectors.oneroster.rows`: CSV rows -> checked records, rejects and warnings;
- :mod:`~connectors.oneroster.tables`: the package merged with the source's stored state,
  duplicates, references;
- :mod:`~connectors.oneroster.join`: one event value per student (key rule, district, places);
- :mod:`~connectors.oneroster.reader`: :func:`read_package`, the whole read;
- :mod:`~connectors.oneroster.publish`: publishing a read package (fingerprints, withdrawal
  guard, the stored state committed after the broker acknowledged everything).
"""

from connectors.oneroster.columns import KNOWN_FILES, READ_ORDER, SPECS, parse_datetime_ms
from connectors.oneroster.join import EXTENSION_ENTITIES, KEY_FIELDS, TYPED_KEY_FIELDS
from connectors.oneroster.package import OneRosterPackageError
from connectors.oneroster.reader import PackageReadResult, StudentEvent, read_package

__all__ = [
    "EXTENSION_ENTITIES",
    "KEY_FIELDS",
    "KNOWN_FILES",
    "READ_ORDER",
    "SPECS",
    "TYPED_KEY_FIELDS",
    "OneRosterPackageError",
    "PackageReadResult",
    "StudentEvent",
    "parse_datetime_ms",
    "read_package",
]

"""Rejected input rows: the value that says why, and the rejects file written beside a package.

The same shape serves warnings (``<package>.warnings.csv``). Every value of a column whose name
suggests a secret is written as ``[redacted]``, and a cell that a spreadsheet would run as a
formula (``=HYPERLINK(...)``) is written with a leading ``'``.

A rejected row never stops a load: it is collected as a :class:`Reject`, counted, and written
to ``<package>.rejects.csv`` next to the package (directory or zip) with its original fields
plus ``file,line,column,reason``, so the district admin can fix the source and re-export.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Columns appended to every rejected row in the rejects file.
DIAGNOSTIC_COLUMNS: tuple[str, ...] = ("file", "line", "column", "reason")

#: Column value used when a problem concerns the whole row rather than one column.
WHOLE_ROW = "*"

#: Words of a column name that mark it as secret: its values never reach a file or message.
SECRET_WORDS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "ssn",
        "socialsecurity",
        "token",
        "secret",
        "secrets",
        "apikey",
        "credential",
        "credentials",
        "pin",
    }
)
REDACTED = "[redacted]"
#: First characters that make a spreadsheet read a cell as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def is_secret_column(name: str) -> bool:
    """Whether a column name suggests a secret: a word password, ssn, token, secret, pin, ...
    (``password``, ``metadata.ssn``, ``apiToken``, ``client_secret``; not ``classNumber``)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    joined = "".join(words)
    return bool(set(words) & SECRET_WORDS) or any(
        s in joined for s in ("password", "socialsecurity", "apikey", "accesstoken")
    )


def neutralised(value: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a leading '."""
    return "'" + value if value.startswith(_FORMULA_START) else value


@dataclass(frozen=True)
class Reject:
    """One rejected row.

    ``file`` is the CSV file name inside the package (``users.csv``), ``line`` the physical
    line number where the row starts (the header is line 1), ``column`` the column name
    (:data:`WHOLE_ROW` when the row as a whole is wrong), ``reason`` a sentence for a human,
    and ``row`` the original fields of the row (header name -> raw text).
    """

    file: str
    line: int
    column: str
    reason: str
    row: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def message(self) -> str:
        """``file:line:column: reason``, the form printed to operators."""
        return f"{self.file}:{self.line}:{self.column}: {self.reason}"

    def __str__(self) -> str:
        return self.message


def rejects_path_for(package: Path) -> Path:
    """Where the rejects of ``package`` go: ``<package>.rejects.csv`` beside it.

    ``/data/export`` -> ``/data/export.rejects.csv``; ``/data/export.zip`` ->
    ``/data/export.zip.rejects.csv`` (the full name is kept so a directory and a zip of the
    same stem never share a rejects file).
    """
    package = Path(package)
    name = package.resolve().name if package.name in ("", ".", "..") else package.name
    return package.resolve().parent / f"{name}.rejects.csv"


def warnings_path_for(package: Path) -> Path:
    """Where the warnings of ``package`` go: ``<package>.warnings.csv`` beside its rejects."""
    rejects = rejects_path_for(package)
    return rejects.with_name(rejects.name.removesuffix(".rejects.csv") + ".warnings.csv")


def _printable(value: str) -> str:
    """Make text that may carry undecodable bytes (surrogate escapes) writable as UTF-8.

    Bytes that were not UTF-8 are shown as ``\\xNN`` so the operator can find them.
    """
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _cell(name: str, reject: Reject, diagnostics: Mapping[str, str]) -> str:
    if name in diagnostics:
        return neutralised(_printable(diagnostics[name]))
    value = reject.row.get(name, "")
    if value and is_secret_column(name):
        return REDACTED
    return neutralised(_printable(value))


def rejects_header(rejects: Iterable[Reject]) -> list[str]:
    """The rejects file header: every original column in first-seen order, then diagnostics.

    An original column that has the name of a diagnostic column is shadowed by it.
    """
    seen: dict[str, None] = {}
    for reject in rejects:
        for name in reject.row:
            if name not in DIAGNOSTIC_COLUMNS:
                seen.setdefault(name, None)
    return [*seen, *DIAGNOSTIC_COLUMNS]


def write_rejects(path: Path, rejects: Iterable[Reject]) -> int:
    """Write ``rejects`` to ``path`` atomically (temporary file, then rename); return the count.

    The file is always written, with only the header when nothing was rejected, so a
    re-export that fixed every row leaves no stale rejects behind.
    """
    items = list(rejects)
    header = rejects_header(items)
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([neutralised(_printable(h)) for h in header])
            for reject in items:
                diagnostics = {
                    "file": reject.file,
                    "line": str(reject.line),
                    "column": reject.column,
                    "reason": reject.reason,
                }
                writer.writerow([_cell(name, reject, diagnostics) for name in header])
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(items)

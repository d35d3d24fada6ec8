"""A package on disk (directory or zip) and its manifest: which version, which files, which mode.

OneRoster 1.1 and 1.2 packages carry ``manifest.csv`` (``propertyName,value``); 1.0 packages
have none. Without a manifest, or without ``oneroster.version`` in it, the version is detected
from the headers (with a warning) and every file present is read as ``bulk``. Problems that
leave the files readable (an empty value for a file the connector does not read, ``absent`` as
a property value, a file the manifest does not name) are warnings; a package that cannot be
read at all raises :class:`OneRosterPackageError` before anything is returned.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Literal

from connectors.oneroster.columns import KNOWN_FILES, VERSIONS, Version
from connectors.source.rejects import WHOLE_ROW, Reject
from streams.errors import HallpassError

Mode = Literal["bulk", "delta"]
FileMode = Literal["bulk", "delta", "absent"]
_FILE_MODES: Final[Mapping[str, FileMode]] = {"bulk": "bulk", "delta": "delta", "absent": "absent"}
MANIFEST: Final = "manifest.csv"


class OneRosterPackageError(HallpassError):
    """The package cannot be read at all; nothing from it may be published.

    The message says what is wrong and what to do about it.
    """


def _check_entry(path: Path, name: str) -> None:
    """Refuses a zip entry that is absolute or climbs out (``..``): such a name is never how
    an export is written, and it could shadow a file of the package."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise OneRosterPackageError(
            f"{path}: the zip entry {name!r} has an absolute path; give a package whose "
            "entries are the CSV files (optionally in one folder)"
        )
    if ".." in parts:
        raise OneRosterPackageError(
            f"{path}: the zip entry {name!r} climbs out of the package (..); give a package "
            "whose entries are the CSV files (optionally in one folder)"
        )


class Package:
    """Read access to the files of a package, a directory or a zip, by file name.

    File names match case-insensitively (``Users.csv``); a zip may wrap them in one folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[str, str] = {}
        if path.is_dir():
            try:
                self._names = {c.name.lower(): c.name for c in path.iterdir() if c.is_file()}
            except OSError as exc:
                raise OneRosterPackageError(
                    f"cannot list the package directory {path}: {exc}; check its permissions"
                ) from exc
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise OneRosterPackageError(
                    f"{path} is not a readable zip ({exc}); give a OneRoster package: a "
                    "directory or a zip holding the CSV files (and manifest.csv)"
                ) from exc
            for info in self._zip.infolist():
                _check_entry(path, info.filename)
                if info.is_dir():
                    continue
                base = info.filename.rsplit("/", 1)[-1]
                if base.lower() in self._names:
                    raise OneRosterPackageError(
                        f"{path}: the zip holds {base} twice ({self._names[base.lower()]} and "
                        f"{info.filename}); one would shadow the other: give a package with "
                        "each file once"
                    )
                self._names[base.lower()] = info.filename
        elif path.exists():
            raise OneRosterPackageError(
                f"{path} is neither a directory nor a zip file; give a OneRoster package"
            )
        else:
            raise OneRosterPackageError(
                f"OneRoster package {path} does not exist; check the path (a directory or a "
                "zip holding the CSV files)"
            )

    def has(self, name: str) -> bool:
        return name.lower() in self._names

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """A binary stream of one file; I/O and zip errors while reading it stop the load."""
        member = self._names[name.lower()]
        try:
            if self._zip is not None:
                with self._zip.open(member) as stream:
                    yield stream
            else:
                with (self.path / member).open("rb") as stream:
                    yield stream
        except (OSError, zipfile.BadZipFile) as exc:
            raise OneRosterPackageError(
                f"cannot read {name} in {self.path}: {exc}; check the file and its permissions"
            ) from exc

    def header(self, name: str) -> list[str]:
        """The lowercased header names of one file ([] when it is missing or unreadable)."""
        if not self.has(name):
            return []
        with self.open(name) as stream:
            first = stream.readline().decode("utf-8-sig", "replace")
        row = next(csv.reader([first]), [])
        return [h.strip().lower() for h in row]

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@dataclass(frozen=True)
class Manifest:
    """What the package says about itself: version, properties, and the mode of each file."""

    version: Version
    properties: Mapping[str, str]
    files: Mapping[str, FileMode]
    has_manifest: bool = True

    def mode_of(self, key: str) -> FileMode:
        return self.files.get(key, "absent")

    @property
    def mode(self) -> Mode:
        """``delta`` when any file present is a delta, else ``bulk``."""
        return "delta" if "delta" in self.files.values() else "bulk"

    @property
    def source_system(self) -> str | None:
        return self.properties.get("source.systemName")


def _warning(reason: str, file: str = MANIFEST, line: int = 0, column: str = WHOLE_ROW) -> Reject:
    return Reject(file, line, column, reason, {})


def detect_version(package: Package) -> tuple[Version, str]:
    """The version a package's headers look like, and the evidence for it."""
    users = set(package.header("users.csv"))
    if package.has("roles.csv") or users & {
        "usermasteridentifier",
        "preferredgivenname",
        "primaryorgsourcedid",
        "pronouns",
    }:
        return "1.2", "roles.csv or 1.2 users columns"
    sessions = set(package.header("academicSessions.csv"))
    if users & {"enableduser", "userids", "agentsourcedids", "grades"} or "schoolyear" in sessions:
        return "1.1", "1.1 users or academicSessions columns"
    return "1.0", "1.0 columns (agents, userId; no enabledUser)"


def read_manifest(package: Package, warnings: list[Reject]) -> Manifest:
    """The manifest of ``package`` (or what stands for it); appends warnings."""
    if not package.has(MANIFEST):
        version, evidence = detect_version(package)
        files: dict[str, FileMode] = {
            key: "bulk" for key, name in KNOWN_FILES.items() if package.has(name)
        }
        warnings.append(
            _warning(
                f"no manifest.csv: read as a OneRoster {version} bulk package (detected from "
                f"{evidence}); every file present is bulk"
            )
        )
        manifest = Manifest(version, {}, files, has_manifest=False)
        _check_files(package, manifest)
        return manifest
    where = f"{package.path}/{MANIFEST}"
    with package.open(MANIFEST) as stream:
        data = stream.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OneRosterPackageError(f"{where} is not UTF-8 ({exc}); save it as UTF-8") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["propertyname", "value"]:
        raise OneRosterPackageError(f"{where} must start with the header propertyName,value")
    properties: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        if len(cells) < 2 or any(cells[2:]):
            raise OneRosterPackageError(
                f"{where}:{number}: expected 2 fields (propertyName,value), got {len(row)}"
            )
        name, value = cells[0], cells[1]
        if name.startswith("file.") or (value and value.lower() != "absent"):
            properties[name] = value
        elif value.lower() == "absent":
            warnings.append(_warning(f"{name} is 'absent': read as not given", line=number))
    version = _version(properties.get("oneroster.version"), package, where, warnings)
    files = _file_modes(package, properties, warnings)
    manifest = Manifest(version, properties, files)
    _check_files(package, manifest)
    return manifest


def _version(raw: str | None, package: Package, where: str, warnings: list[Reject]) -> Version:
    if raw is None:
        version, evidence = detect_version(package)
        warnings.append(
            _warning(
                f"manifest.csv has no oneroster.version: read as OneRoster {version} "
                f"(detected from {evidence})"
            )
        )
        return version
    for known in VERSIONS:
        if raw == known or raw.startswith(known + "."):
            return known
    raise OneRosterPackageError(
        f"{where}: oneroster.version is {raw!r}; this connector reads OneRoster 1.0, 1.1 and "
        "1.2 CSV packages"
    )


def _file_modes(
    package: Package, properties: Mapping[str, str], warnings: list[Reject]
) -> dict[str, FileMode]:
    files: dict[str, FileMode] = {}
    named = {
        p.removeprefix("file.").lower(): (p, v)
        for p, v in properties.items()
        if p.startswith("file.")
    }
    any_delta = any(v.lower() == "delta" for _, v in named.values())
    for key, csv_name in KNOWN_FILES.items():
        prop, raw = named.pop(key.lower(), (f"file.{key}", None))
        if raw is None:
            if package.has(csv_name):
                warnings.append(
                    _warning(
                        f"{csv_name} is in the package but manifest.csv does not name it "
                        f"(file.{key}): not read; add file.{key},bulk or delta to read it"
                    )
                )
            continue
        mode = _FILE_MODES.get(raw.lower())
        if mode is None and not raw:
            mode = ("delta" if any_delta else "bulk") if package.has(csv_name) else "absent"
            warnings.append(_warning(f"{prop} has no value: read as {mode}"))
        if mode is None:
            raise OneRosterPackageError(
                f"{package.path}/{MANIFEST}: {prop} is {raw!r}; it must be bulk, delta or absent"
            )
        files[key] = mode
    for prop, raw in named.values():  # files this connector does not read
        if not raw:
            warnings.append(_warning(f"{prop} has no value; the file is not read here"))
        elif _FILE_MODES.get(raw.lower()) is None:
            warnings.append(
                _warning(
                    f"{prop} is {raw!r} (not bulk, delta or absent); the file is not read here"
                )
            )
    return files


def _check_files(package: Package, manifest: Manifest) -> None:
    where = f"{package.path}/{MANIFEST}" if manifest.has_manifest else str(package.path)
    for key, mode in manifest.files.items():
        csv_name = KNOWN_FILES[key]
        if mode != "absent" and not package.has(csv_name):
            raise OneRosterPackageError(
                f"{where} says file.{key} is {mode}, but {package.path} has no {csv_name}; "
                "add the file or mark it absent in the manifest"
            )
    if manifest.mode_of("users") == "absent" and manifest.mode == "bulk":
        detail = (
            f"{where}: file.users is absent"
            if manifest.has_manifest
            else f"{package.path} has no users.csv"
        )
        raise OneRosterPackageError(
            f"{detail}, but a bulk package needs users.csv (the students); export it with the "
            "package"
        )

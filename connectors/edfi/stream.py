"""Streaming reads of one interchange file: top-level records with their line, then dropped.

:func:`records` runs expat over the file in chunks of whole lines and builds each child of
the root element as a small tree of its own (no tree of the whole file is ever built), with
the line its start tag is on; a record is dropped once the caller has seen it, so memory holds
one chunk's records whatever the size of the file. A document type
declaration (``<!DOCTYPE``, which could declare entities) is refused before parsing: Ed-Fi
interchanges never carry one.

:class:`Node` reads a record by local element paths (``StudentReference/StudentIdentity/
StudentUniqueId``) in the file's namespace, with whitespace trimmed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only to build records
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from xml.parsers import expat


class XmlProblem(ValueError):
    """The file is not well-formed XML (or carries a DTD); ``line`` is where it was found."""

    def __init__(self, line: int, element: str, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.element = element
        self.reason = reason


@lru_cache(maxsize=4096)
def _qualified(namespace: str, path: str) -> str:
    if not namespace:
        return path
    return "/".join(
        f"{{{namespace}}}{part}" if part not in (".", "..", "*") else part
        for part in path.split("/")
    )


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass(frozen=True)
class Node:
    """One element of a record, read by local names in ``namespace``."""

    element: ET.Element
    namespace: str

    @property
    def name(self) -> str:
        return local_name(self.element.tag)

    def attr(self, name: str) -> str | None:
        value = self.element.get(name)
        return value.strip() or None if value is not None else None

    def text(self, path: str) -> str | None:
        """Trimmed text of the first element at ``path``, or None when absent or empty."""
        found = self.element.find(_qualified(self.namespace, path))
        if found is None or found.text is None:
            return None
        return found.text.strip() or None

    def find(self, path: str) -> Node | None:
        found = self.element.find(_qualified(self.namespace, path))
        return None if found is None else Node(found, self.namespace)

    def all(self, path: str) -> list[Node]:
        return [
            Node(e, self.namespace) for e in self.element.findall(_qualified(self.namespace, path))
        ]

    def texts(self, path: str) -> list[str]:
        return [t for t in (n.element.text for n in self.all(path)) if t and t.strip()]


@dataclass(frozen=True)
class Root:
    """The root element of an interchange: its local name and namespace."""

    name: str
    namespace: str
    line: int


def _chunks(lines: Iterable[bytes], size: int = 1 << 16) -> Iterator[bytes]:
    """Whole lines joined into chunks of about ``size`` bytes."""
    batch: list[bytes] = []
    length = 0
    for line in lines:
        batch.append(line)
        length += len(line)
        if length >= size:
            yield b"".join(batch)
            batch, length = [], 0
    if batch:
        yield b"".join(batch)


def _parse(
    lines: Iterable[bytes],
    on_start: Callable[[str, dict[str, str], int], None],
    on_end: Callable[[str], None],
    on_text: Callable[[str], None] | None,
) -> Iterator[None]:
    """Run expat over ``lines``, calling back with names as ``{namespace}local`` and the line
    of each start tag; yields after every chunk. Raises :class:`XmlProblem`."""
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True

    def start(name: str, attrs: dict[str, str]) -> None:
        on_start("{" + name if "}" in name else name, attrs, parser.CurrentLineNumber)

    def end(name: str) -> None:
        on_end("{" + name if "}" in name else name)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    if on_text is not None:
        parser.CharacterDataHandler = on_text
    before_root = True
    line_no = 1
    try:
        for chunk in _chunks(lines):
            if before_root:
                doctype = chunk.find(b"<!DOCTYPE")
                if doctype < 0:
                    doctype = chunk.find(b"<!ENTITY")
                if doctype >= 0:
                    raise XmlProblem(
                        line_no + chunk.count(b"\n", 0, doctype),
                        "DOCTYPE",
                        "a document type declaration is not accepted (Ed-Fi "
                        "interchanges carry none)",
                    )
                before_root = False
            line_no += chunk.count(b"\n")
            parser.Parse(chunk, False)
            yield None
        parser.Parse(b"", True)
        yield None
    except expat.ExpatError as exc:
        reason = expat.errors.messages.get(exc.code, "syntax error") if exc.code else str(exc)
        raise XmlProblem(
            exc.lineno,
            "*",
            f"not well-formed XML ({reason}); the file was not used: fix or re-export it",
        ) from None


def read_root(lines: Iterable[bytes]) -> Root:
    """The root element of a file, reading no further than its first chunk with one."""
    found: list[Root] = []

    def start(tag: str, _attrs: dict[str, str], line: int) -> None:
        if not found:
            namespace = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
            found.append(Root(local_name(tag), namespace, line))

    for _ in _parse(lines, start, lambda _tag: None, None):
        if found:
            return found[0]
    raise XmlProblem(0, "*", "the file holds no XML element")


def records(lines: Iterable[bytes], namespace: str) -> Iterator[tuple[int, Node]]:
    """Every child of the root element as ``(line, Node)``. Each record is built on its own
    (no tree of the whole file) and handed over once its chunk is parsed, so memory holds
    one chunk of records whatever the size of the file."""
    ready: list[tuple[int, ET.Element]] = []
    depth = 0
    first_line = 0
    builder = ET.TreeBuilder()

    def start(tag: str, attrs: dict[str, str], line: int) -> None:
        nonlocal depth, first_line, builder
        depth += 1
        if depth == 2:
            first_line = line
            builder = ET.TreeBuilder()
        if depth >= 2:
            builder.start(tag, attrs)

    def end(tag: str) -> None:
        nonlocal depth
        if depth >= 2:
            element = builder.end(tag)
            if depth == 2:
                ready.append((first_line, element))
        depth -= 1

    def text(data: str) -> None:
        if depth >= 2:
            builder.data(data)

    for _ in _parse(lines, start, end, text):
        for line, element in ready:
            yield line, Node(element, namespace)
        ready.clear()

"""Streaming reads of one interchange file: top-level records with their line, then cleared.

:func:`records` feeds the XML to a pull parser one line at a time, so each record is known
with the line its start tag ends on, and drops every record from the tree once the caller has
seen it: memory holds one record at a time whatever the size of the file. A document type
declaration (``<!DOCTYPE``, which could declare entities) is refused before parsing: Ed-Fi
interchanges never carry one.

:class:`Node` reads a record by local element paths (``StudentReference/StudentIdentity/
StudentUniqueId``) in the file's namespace, with whitespace trimmed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import cast


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
    return "/".join(f"{{{namespace}}}{part}" if part not in (".", "..", "*") else part
                    for part in path.split("/"))


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
        return [Node(e, self.namespace)
                for e in self.element.findall(_qualified(self.namespace, path))]

    def texts(self, path: str) -> list[str]:
        return [t for t in (n.element.text for n in self.all(path)) if t and t.strip()]


@dataclass(frozen=True)
class Root:
    """The root element of an interchange: its local name and namespace."""

    name: str
    namespace: str
    line: int


def _feed_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, str, ET.Element]]:
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    line_no = 0
    seen_root = False
    try:
        for line_no, line in enumerate(lines, 1):
            if not seen_root and (b"<!DOCTYPE" in line or b"<!ENTITY" in line):
                raise XmlProblem(line_no, "DOCTYPE", "a document type declaration is not "
                                 "accepted (Ed-Fi interchanges carry none)")
            parser.feed(line)
            for item in parser.read_events():
                seen_root = True
                event, element = cast(tuple[str, object], item)
                yield line_no, event, _element(element)
        parser.close()
        for item in parser.read_events():
            event, element = cast(tuple[str, object], item)
            yield line_no, event, _element(element)
    except ET.ParseError as exc:
        at = exc.position[0] if exc.position else line_no
        detail = str(exc).split(":")[0]
        raise XmlProblem(at, "*", f"not well-formed XML ({detail}); the file was not used: "
                         "fix or re-export it") from None


def _element(item: object) -> ET.Element:
    assert isinstance(item, ET.Element)  # start/end events carry elements
    return item


def read_root(lines: Iterable[bytes]) -> Root:
    """The root element of a file, reading no further than its start tag."""
    for line_no, event, element in _feed_lines(lines):
        if event == "start":
            tag = element.tag
            namespace = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
            return Root(local_name(tag), namespace, line_no)
    raise XmlProblem(0, "*", "the file holds no XML element")


def records(lines: Iterable[bytes], namespace: str) -> Iterator[tuple[int, Node]]:
    """Every child of the root element as ``(line, Node)``; each is removed from the tree
    after the caller resumes, so memory does not grow with the file."""
    depth = 0
    root: ET.Element | None = None
    start_line = 0
    for line_no, event, element in _feed_lines(lines):
        if event == "start":
            depth += 1
            if depth == 1:
                root = element
            elif depth == 2:
                start_line = line_no
            continue
        depth -= 1
        if depth == 1 and root is not None:
            yield start_line, Node(element, namespace)
            root.clear()

"""Avro binary encoding specialised to one schema: the publishers' and the processor's hot path
(issue 17).

fastavro's ``schemaless_writer`` validates every ``["null", record]`` union it meets by
walking the whole record below it, so a student record (14 such unions, two levels deep, about
150 leaves) costs about 600 µs, four fifths of it validation that the write repeats. A
:class:`SchemaEncoder` generates Python source for the schema once, one function per record
position, that checks and writes each field in one pass: about a tenth of the time, the same
bytes.

The generated writer takes only the plain shapes the connectors build: ``dict`` records,
``list`` arrays, ``str``, ``int``, ``float``, ``bool`` and ``None``, and for logical types
what fastavro's own converters take (``datetime.date`` for ``date``...). Anything else (a
value of another type, a string that is not UTF-8, a number out of range, a missing field
without a default) is handed to fastavro: the bytes, the accepted values and the errors are
fastavro's, exactly as before. So the fast path never accepts what fastavro would refuse, and
:meth:`SchemaEncoder.valid` answers as ``fastavro.validation.validate`` does.

A schema the generator does not cover (recursive types, unions of two non-null branches,
fixed, float, logical types other than dates and times) is encoded by fastavro throughout.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

import fastavro
from fastavro.validation import validate
from fastavro.write import LOGICAL_WRITERS

#: Logical types whose fastavro converter leaves a value of the base type unchanged, so the
#: generated code converts only values of another type (dates, times, datetimes).
_LOGICAL: Final[frozenset[str]] = frozenset(
    {
        "int-date",
        "int-time-millis",
        "long-time-micros",
        "long-timestamp-millis",
        "long-timestamp-micros",
        "long-local-timestamp-millis",
        "long-local-timestamp-micros",
    }
)
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
#: doubles take ints up to 2**53 as they are; larger ones are fastavro's to convert
_EXACT: Final = 2**53
_INT_RANGE: Final[Mapping[str, tuple[int, int]]] = {
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}


class _Slow(Exception):
    """The generated writer does not take this value: fastavro decides."""


class _Unsupported(Exception):
    """The generator does not cover this schema."""


def _varint(n: int) -> bytes:
    """Zig-zag varint of a long, as Avro writes ints, longs, lengths and counts."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 0x200000:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: varints of 0..1023: string lengths and array counts
_SMALL: Final[tuple[bytes, ...]] = tuple(_varint(n) for n in range(1024))


def _long(n: int) -> bytes:
    return _SMALL[n] if 0 <= n < 1024 else _varint(n)


def _convert(prepare: Callable[[Any, Any], Any], schema: Any, value: Any) -> int:
    """A logical value (a date, a datetime...) as the int fastavro writes for it."""
    try:
        converted = prepare(value, schema)
    except Exception as exc:
        raise _Slow from exc
    if converted.__class__ is not int:
        raise _Slow
    return int(converted)


class _Generator:
    """Python source of the writer of one parsed schema."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.functions: list[list[str]] = []
        self.constants: dict[str, Any] = {}
        self._ids = itertools.count()
        self._stack: list[str] = []

    def constant(self, value: Any) -> str:
        name = f"_c{next(self._ids)}"
        self.constants[name] = value
        return name

    def local(self) -> str:
        return f"v{next(self._ids)}"

    def record(self, schema: Mapping[str, Any]) -> str:
        """The name of a new function ``f(datum, out)`` writing a record of ``schema``."""
        fullname = schema["name"]
        if fullname in self._stack:
            raise _Unsupported(f"recursive type {fullname}")
        self._stack.append(fullname)
        name = f"_record{next(self._ids)}"
        body: list[str] = [
            f"def {name}(d, out):",
            "    if d.__class__ is not dict or '-type' in d:",
            "        raise _Slow",
            "    get = d.get",
        ]
        for field in schema["fields"]:
            var = self.local()
            if field.get("default") is None:
                body.append(f"    {var} = get({field['name']!r})")
            else:
                default = self.constant(field["default"])
                body.append(f"    {var} = get({field['name']!r}, {default})")
            body += self.value(field["type"], var, 1)
        self.functions.append(body)
        self._stack.pop()
        return name

    def value(self, schema: Any, var: str, depth: int) -> list[str]:
        """Lines (indented ``depth`` levels) that check ``var`` and append its encoding."""
        if isinstance(schema, str) and schema in self.named:
            schema = self.named[schema]
        if isinstance(schema, list):
            return self.union(schema, var, depth)
        kind = schema if isinstance(schema, str) else schema["type"]
        logical = None if isinstance(schema, str) else schema.get("logicalType")
        if logical is not None:
            return self.logical(schema, f"{kind}-{logical}", var, depth)
        write = self._writers.get(kind)
        if write is None:
            raise _Unsupported(f"type {kind}")
        return write(self, schema, var, depth)

    def null(self, _schema: Any, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        return [f"{pad}if {var} is not None:", f"{pad}    raise _Slow"]

    def boolean(self, _schema: Any, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        return [
            f"{pad}if {var} is True:",
            f"{pad}    out += b'\\x01'",
            f"{pad}elif {var} is False:",
            f"{pad}    out += b'\\x00'",
            f"{pad}else:",
            f"{pad}    raise _Slow",
        ]

    def integer(self, schema: Any, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        low, high = _INT_RANGE[schema if isinstance(schema, str) else schema["type"]]
        return [
            f"{pad}if {var}.__class__ is not int or not {low} <= {var} <= {high}:",
            f"{pad}    raise _Slow",
            f"{pad}out += _long({var})",
        ]

    def double(self, _schema: Any, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        return [
            f"{pad}if {var}.__class__ is float:",
            f"{pad}    out += _double({var})",
            f"{pad}elif {var}.__class__ is int and {-_EXACT} <= {var} <= {_EXACT}:",
            f"{pad}    out += _double(float({var}))",
            f"{pad}else:",
            f"{pad}    raise _Slow",
        ]

    def enum(self, schema: Any, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        symbols = self.constant({s: _long(i) for i, s in enumerate(schema["symbols"])})
        encoded = self.local()
        return [
            f"{pad}{encoded} = {symbols}.get({var}) if {var}.__class__ is str else None",
            f"{pad}if {encoded} is None:",
            f"{pad}    raise _Slow",
            f"{pad}out += {encoded}",
        ]

    def array(self, schema: Any, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        item = self.local()
        return [
            f"{pad}if {var}.__class__ is not list:",
            f"{pad}    raise _Slow",
            f"{pad}if {var}:",
            f"{pad}    out += _long(len({var}))",
            f"{pad}    for {item} in {var}:",
            *self.value(schema["items"], item, depth + 2),
            f"{pad}out += b'\\x00'",
        ]

    def map(self, schema: Any, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        key, item = self.local(), self.local()
        return [
            f"{pad}if {var}.__class__ is not dict:",
            f"{pad}    raise _Slow",
            f"{pad}if {var}:",
            f"{pad}    out += _long(len({var}))",
            f"{pad}    for {key}, {item} in {var}.items():",
            *self.string(key, depth + 2),
            *self.value(schema["values"], item, depth + 2),
            f"{pad}out += b'\\x00'",
        ]

    def nested(self, schema: Any, var: str, depth: int) -> list[str]:
        return [f"{'    ' * depth}{self.record(schema)}({var}, out)"]

    def text(self, _schema: Any, var: str, depth: int) -> list[str]:
        return self.string(var, depth)

    _writers: Final[Mapping[str, Callable[[_Generator, Any, str, int], list[str]]]] = {
        "null": null,
        "boolean": boolean,
        "int": integer,
        "long": integer,
        "double": double,
        "string": text,
        "enum": enum,
        "array": array,
        "map": map,
        "record": nested,
    }

    def string(self, var: str, depth: int, table: str = "_SMALL") -> list[str]:
        """Check and write a string; ``table`` holds what goes before its bytes, by length
        (its varint, or the union branch and its varint)."""
        pad = "    " * depth
        encoded = self.local()
        return [
            f"{pad}if {var}.__class__ is not str:",
            f"{pad}    raise _Slow",
            f"{pad}try:",
            f"{pad}    {encoded} = {var}.encode()",
            f"{pad}    out += {table}[len({encoded})]",
            f"{pad}except UnicodeEncodeError:",
            f"{pad}    raise _Slow from None",
            f"{pad}except IndexError:",
            f"{pad}    out += {table}[0][:-1] + _varint(len({encoded}))",
            f"{pad}out += {encoded}",
        ]

    def logical(self, schema: Mapping[str, Any], key: str, var: str, depth: int) -> list[str]:
        pad = "    " * depth
        if key not in _LOGICAL:
            raise _Unsupported(f"logical type {key}")
        prepare = self.constant(LOGICAL_WRITERS[key])
        held = self.constant(schema)
        low, high = _INT_RANGE[schema["type"]]
        lines = [f"{pad}if {var}.__class__ is int:", f"{pad}    pass"]
        if key == "int-date":  # fastavro's conversion, without the call
            lines += [
                f"{pad}elif {var}.__class__ is _date:",
                f"{pad}    {var} = {var}.toordinal() - {_EPOCH_ORDINAL}",
            ]
        return [
            *lines,
            f"{pad}else:",
            f"{pad}    {var} = _convert({prepare}, {held}, {var})",
            f"{pad}if not {low} <= {var} <= {high}:",
            f"{pad}    raise _Slow",
            f"{pad}out += _long({var})",
        ]

    def union(self, schema: list[Any], var: str, depth: int) -> list[str]:
        pad = "    " * depth
        others = [i for i, branch in enumerate(schema) if branch != "null"]
        if len(schema) == 1:
            return [f"{pad}out += b'\\x00'", *self.value(schema[0], var, depth)]
        if len(schema) != 2 or len(others) != 1:
            raise _Unsupported("a union other than null and one type")
        branch = others[0]
        head = [f"{pad}if {var} is None:", f"{pad}    out += {_long(1 - branch)!r}", f"{pad}else:"]
        inner = schema[branch]
        if inner == "string":  # the commonest field: branch and length from one table
            table = self.constant(tuple(_long(branch) + n for n in _SMALL))
            return [*head, *self.string(var, depth + 1, table)]
        return [*head, f"{pad}    out += {_long(branch)!r}", *self.value(inner, var, depth + 1)]


def _compile(parsed: Any) -> Callable[[Any, bytearray], None] | None:
    """The generated writer of a parsed record schema, or None if it is not covered."""
    if not isinstance(parsed, Mapping) or parsed.get("type") != "record":
        return None
    generator = _Generator(parsed.get("__named_schemas", {}))
    try:
        entry = generator.record(parsed)
    except _Unsupported:
        return None
    source = "\n\n".join("\n".join(lines) for lines in reversed(generator.functions))
    namespace: dict[str, Any] = {
        "_Slow": _Slow,
        "_long": _long,
        "_SMALL": _SMALL,
        "_varint": _varint,
        "_double": struct.Struct("<d").pack,
        "_convert": _convert,
        "_date": dt.date,
        **generator.constants,
    }
    # the source is generated above from the schema's structure alone: names are quoted
    # with repr, values held as constants
    exec(compile(source, f"<avro writer {parsed['name']}>", "exec"), namespace)  # noqa: S102
    writer: Callable[[Any, bytearray], None] = namespace[entry]
    return writer


class SchemaEncoder:
    """Encodes records of one Avro record schema (see the module doc).

    ``prefix`` goes before each body (the Confluent wire header)."""

    def __init__(self, schema: Mapping[str, Any], prefix: bytes = b"") -> None:
        self.parsed: Any = fastavro.parse_schema(dict(schema))
        self.prefix = prefix
        self._writer = _compile(self.parsed)

    @property
    def specialised(self) -> bool:
        """True when the schema has a generated writer (else fastavro does everything)."""
        return self._writer is not None

    def fast(self, record: Any) -> bytes | None:
        """The encoding by the generated writer, or None if it does not take ``record``."""
        if self._writer is None:
            return None
        out = bytearray(self.prefix)
        try:
            self._writer(record, out)
        except _Slow:
            return None
        return bytes(out)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """The prefix and the Avro body of ``record``; fastavro's error if it refuses it."""
        encoded = self.fast(record)
        if encoded is not None:
            return encoded
        out = io.BytesIO()
        out.write(self.prefix)
        fastavro.schemaless_writer(out, self.parsed, record)
        return out.getvalue()

    def valid(self, record: Mapping[str, Any]) -> bool:
        """``fastavro.validation.validate(record, schema)`` (False for what it raises on)."""
        if self.fast(record) is not None:
            return True
        try:
            return bool(validate(record, self.parsed, raise_errors=False))
        except (ValueError, TypeError):
            return False


__all__ = ["SchemaEncoder"]

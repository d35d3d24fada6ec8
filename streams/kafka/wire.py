"""Confluent wire format with fastavro: ``0x00``, a 4-byte schema id, the Avro body.

confluent-kafka's ``AvroSerializer``/``AvroDeserializer`` speak the same format (the tests
prove it both ways); this thin codec exists because the processor's hot path encodes and
decodes every event, and a registered schema only needs to be looked up once.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
from collections.abc import Mapping
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.errors import HallpassError
from streams.kafka.avro_writer import SchemaEncoder

MAGIC = 0
_HEADER = struct.Struct(">bI")


class WireFormatError(ValueError):
    """Bytes that are not a Confluent-framed Avro record of a known schema."""


class RegistryUnavailable(HallpassError, RuntimeError):
    """The schema registry did not answer (connection refused, timeout, HTTP 5xx): a wait,
    never bad input. Nothing that needs the schema may be dead-lettered or committed."""


class RegistryAccessError(HallpassError, RuntimeError):
    """The schema registry refused this client (credentials, role or TLS trust): a setting
    to fix, never a bad record."""


def access_refused(exc: BaseException) -> RegistryAccessError | None:
    """``exc`` as a :class:`RegistryAccessError` if the registry refused the client: HTTP
    401 or 403, or its TLS certificate was not trusted; None for anything else."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, SchemaRegistryError) and cause.http_status_code in (401, 403):
            what = (
                "did not accept the credentials"
                if cause.http_status_code == 401
                else "does not allow this action for the credentials"
            )
            return RegistryAccessError(
                f"the schema registry {what} (HTTP {cause.http_status_code}): set "
                "HALLPASS_SCHEMA_REGISTRY_USER_INFO_FILE to a mode-600 file holding the "
                "registry user:password you were given (vendors: the read-only one)"
            )
        if "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return RegistryAccessError(
                "the schema registry's TLS certificate is not trusted: set "
                "HALLPASS_SCHEMA_REGISTRY_CA_LOCATION to the CA certificate (PEM) that "
                "signed it"
            )
        cause = cause.__cause__ or cause.__context__
    return None


def parse(schema: Mapping[str, Any]) -> Any:
    """fastavro's parsed form of a schema."""
    return fastavro.parse_schema(dict(schema))


def without_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without ``logicalType``: dates and timestamps decode as the plain
    ints they are on the wire (epoch days, epoch milliseconds), which is what the policy, the
    tables and JSON want."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [without_logical_types(v) for v in schema]
    return schema


class WireEncoder:
    """Encodes records of one schema for one subject; registers the schema once."""

    def __init__(
        self,
        registry: SchemaRegistryClient,
        subject: str,
        schema: Mapping[str, Any],
        logical_types: bool = True,
        register: bool = True,
    ) -> None:
        """``logical_types=False``: records carry dates and timestamps as the ints they are
        on the wire (what :class:`WireDecoder` returns), and fastavro skips a conversion
        check per value; the bytes are the same. ``register=False``: the exact schema must
        already be registered under ``subject`` (looked up, whatever other versions the
        subject has; a ``SchemaRegistryError`` if it is not)."""
        self.subject = subject
        registered = Schema(json.dumps(schema), "AVRO")
        try:
            if register:
                self.schema_id = registry.register_schema(subject, registered)
            else:
                found = registry.lookup_schema(subject, registered).schema_id
                if found is None:
                    raise WireFormatError(f"the registry gave no schema id for {subject}")
                self.schema_id = found
        except Exception as exc:
            refused = access_refused(exc)
            if refused is not None:
                raise refused from exc
            raise
        self._header = _HEADER.pack(MAGIC, self.schema_id)
        # fastavro's bytes and errors, by a writer generated for the schema (issue 17)
        self._encoder = SchemaEncoder(
            schema if logical_types else without_logical_types(schema), self._header
        )

    def encode(self, record: Mapping[str, Any]) -> bytes:
        return self._encoder.encode(record)

    @classmethod
    def latest(cls, registry: SchemaRegistryClient, subject: str) -> WireEncoder:
        """An encoder for the latest version registered under ``subject``, found with a
        read (GET): for a client whose registry credentials are read-only (a vendor), which
        may neither register nor look a schema up (a POST)."""
        try:
            found = registry.get_latest_version(subject)
        except Exception as exc:
            raise _lookup_failure(f"subject {subject}", exc) from exc
        if found.schema_id is None or found.schema is None:
            raise WireFormatError(f"the registry gave no schema for {subject}")
        encoder = cls.__new__(cls)
        encoder.subject = subject
        encoder.schema_id = found.schema_id
        encoder._header = _HEADER.pack(MAGIC, found.schema_id)
        encoder._encoder = SchemaEncoder(
            json.loads(found.schema.schema_str or "{}"), encoder._header
        )
        return encoder


class WireDecoder:
    """Decodes Confluent-framed Avro of any schema id, fetching each writer schema once.

    With ``reader_schema`` the record is resolved to that schema (Avro schema resolution),
    so a consumer sees one stable shape whatever compatible version was written. Logical
    types are not converted: timestamps and dates come back as ints.
    """

    def __init__(
        self,
        registry: SchemaRegistryClient,
        reader_schema: Mapping[str, Any] | None = None,
        record_name: str | None = None,
        expected_schema: Mapping[str, Any] | None = None,
    ) -> None:
        """``record_name``: the full name every writer schema must have (the input topic's
        record); a record written with another schema is bad input. ``expected_schema``:
        the schema the consumer checks records against; :meth:`conforms` says which records
        were written with exactly that schema (their decoded values have its types)."""
        self._registry = registry
        self._expected = _canonical(expected_schema) if expected_schema is not None else None
        #: schema ids whose writer schema is ``expected_schema`` (parsing canonical form)
        self._conforming: set[int] = set()
        self._reader = (
            parse(without_logical_types(reader_schema)) if reader_schema is not None else None
        )
        self._record_name = record_name
        #: schema id -> parsed writer schema; only successes are cached (a failed lookup is
        #: asked again next time)
        self._writers: dict[int, Any] = {}

    def writer_schema(self, schema_id: int) -> Any:
        parsed = self._writers.get(schema_id)
        if parsed is None:
            try:
                found = self._registry.get_schema(schema_id)
            except Exception as exc:
                raise _lookup_failure(f"schema id {schema_id}", exc) from exc
            parsed = self._parsed_writer(schema_id, found.schema_str)
            self._writers[schema_id] = parsed
        return parsed

    def _parsed_writer(self, schema_id: int, schema_str: str | None) -> Any:
        try:
            schema = json.loads(schema_str or "{}")
            parsed = parse(without_logical_types(schema))
        except Exception as exc:  # not an Avro schema (another schema type, or broken)
            raise WireFormatError(
                f"schema id {schema_id} is not an Avro schema: {type(exc).__name__}"
            ) from exc
        name = parsed.get("name") if isinstance(parsed, dict) else None
        if self._record_name is not None and name != self._record_name:
            raise WireFormatError(
                f"schema id {schema_id} is a {name}, not a "
                f"{self._record_name} (the schema of this topic)"
            )
        if self._expected is not None and _canonical(schema) == self._expected:
            self._conforming.add(schema_id)
        return parsed

    def conforms(self, data: bytes | None) -> bool:
        """Was ``data`` (already decoded) written with exactly the expected schema? Then the
        decoder gave every field the type that schema gives it, and a check of the decoded
        record's types against it can be skipped."""
        if data is None or len(data) < _HEADER.size:
            return False
        magic, schema_id = _HEADER.unpack_from(data)
        return magic == MAGIC and schema_id in self._conforming

    def prime(self, subject: str) -> int:
        """Fetch and cache every registered version of ``subject`` (an input topic's
        schemas, at start-up: decoding them needs no registry later); a subject not yet
        registered is skipped. Returns how many were cached. Raises
        :class:`RegistryUnavailable` if the registry does not answer."""
        try:
            versions = self._registry.get_versions(subject)
        except Exception as exc:
            failure = _lookup_failure(f"subject {subject}", exc)
            if isinstance(failure, WireFormatError):
                return 0
            raise failure from exc
        cached = 0
        for version in versions:
            try:
                found = self._registry.get_version(subject, version)
            except Exception as exc:
                failure = _lookup_failure(f"subject {subject} version {version}", exc)
                if isinstance(failure, WireFormatError):
                    continue
                raise failure from exc
            if found.schema_id is None or found.schema is None:
                continue
            try:
                self._writers[found.schema_id] = self._parsed_writer(
                    found.schema_id, found.schema.schema_str
                )
                cached += 1
            except WireFormatError:
                continue  # decoding a record of it is a dead letter, as without priming
        return cached

    def prefetch(self, data: bytes | None) -> None:
        """Look up (and cache) the writer schema of ``data`` if it is framed; raises only
        :class:`RegistryUnavailable` (bad input is found when it is decoded)."""
        if data is None or len(data) < _HEADER.size:
            return
        magic, schema_id = _HEADER.unpack_from(data)
        if magic == MAGIC:
            with contextlib.suppress(WireFormatError):  # bad input: found when decoded
                self.writer_schema(schema_id)

    def reencode(self, data: bytes | None, record: Mapping[str, Any]) -> bytes:
        """``record`` (decoded from ``data`` and changed) encoded again with the writer schema
        of ``data``, under the same schema id."""
        if data is None or len(data) < _HEADER.size:
            raise WireFormatError("not Confluent wire format: fewer than 5 bytes")
        _magic, schema_id = _HEADER.unpack_from(data)
        out = io.BytesIO()
        out.write(data[: _HEADER.size])
        fastavro.schemaless_writer(out, self.writer_schema(schema_id), record)
        return out.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None or len(data) < _HEADER.size:
            raise WireFormatError("not Confluent wire format: fewer than 5 bytes")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise WireFormatError(f"not Confluent wire format: magic byte {magic}, expected 0")
        writer = self.writer_schema(schema_id)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(data[_HEADER.size :]), writer, self._reader
            )
        except Exception as exc:  # fastavro raises many kinds on corrupt bodies
            raise WireFormatError(
                f"undecodable Avro body for schema id {schema_id}: {exc}"
            ) from exc
        if not isinstance(record, dict):
            raise WireFormatError("the Avro body is not a record")
        return record


def _canonical(schema: Any) -> str:
    """A schema's Parsing Canonical Form (names, types, fields and order; no docs, defaults
    or logical types, which do not change the types a decoder gives)."""
    return str(fastavro.schema.to_parsing_canonical_form(parse(without_logical_types(schema))))


def _lookup_failure(what: str, exc: BaseException) -> Exception:
    """What a failed registry lookup means: the client is refused (a setting), the registry
    answered that there is no such schema (HTTP 4xx: bad input, a dead letter), or it did
    not answer (anything else: connection refused, timeout, HTTP 5xx: wait and try again)."""
    refused = access_refused(exc)
    if refused is not None:
        return refused
    if isinstance(exc, SchemaRegistryError) and 400 <= (exc.http_status_code or 0) < 500:
        return WireFormatError(
            f"unknown {what}: the registry has no such schema (HTTP {exc.http_status_code})"
        )
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
    return RegistryUnavailable(f"the schema registry did not answer a lookup of {what} ({text})")

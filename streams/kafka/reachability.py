"""Is the bus there? One bounded check of the broker and of the schema registry, so that a
command against an unreachable or misconfigured cluster stops with one line that names the
address and the setting to check, instead of librdkafka's retry loop or a traceback."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.errors import HallpassError
from streams.kafka.wire import access_refused

#: how long a command waits for the broker or the registry to answer before it gives up
DEFAULT_TIMEOUT_S = 15.0
ENV_CONNECT_TIMEOUT = "HALLPASS_CONNECT_TIMEOUT_S"


class Unreachable(HallpassError):
    """The broker or the registry did not answer in time; the message says what to check."""


def check_broker(config: Mapping[str, str | int | float | bool], timeout_s: float) -> None:
    """Ask the brokers for their metadata, once, for at most ``timeout_s``."""
    bootstrap = str(config.get("bootstrap.servers", ""))
    started = time.monotonic()
    admin = AdminClient(
        {
            **config,
            "log_level": 0,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
        }
    )
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        reason = error.str() if isinstance(error, KafkaError) else str(exc)
        authentication = isinstance(error, KafkaError) and "AUTHENTICATION" in error.name()
        hint = (
            "check the client security settings (--client-properties or "
            "HALLPASS_CLIENT_PROPERTIES, and the password file)"
            if authentication
            else "check HALLPASS_BOOTSTRAP_SERVERS (or bootstrap.servers in the client properties "
            "file), the network and "
            "security.protocol (a TLS listener needs SSL or SASL_SSL), or start the local "
            "bus with `hallpass up`"
        )
        raise Unreachable(
            f"cannot reach Kafka at {bootstrap} (no answer in "
            f"{time.monotonic() - started:.0f} s: {reason}): {hint}"
        ) from exc


def check_registry(config: Mapping[str, str | int], timeout_s: float) -> None:
    """Ask the schema registry for its subjects, once, for at most ``timeout_s``."""
    url = str(config.get("url", ""))
    client = SchemaRegistryClient({**config, "timeout": max(1, round(timeout_s)), "max.retries": 0})
    try:
        client.get_subjects()
    except Exception as exc:
        refused = access_refused(exc)
        if refused is not None:
            raise refused from exc
        raise Unreachable(
            f"cannot reach the schema registry at {url} ({_first_line(exc)}): check "
            "HALLPASS_SCHEMA_REGISTRY_URL or schema.registry.url (Apicurio's Confluent API "
            "ends in /apis/ccompat/v7), its CA (HALLPASS_SCHEMA_REGISTRY_CA_LOCATION), or start "
            "the local bus with `hallpass up`"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


#: librdkafka errors that mean "the cluster did not answer", not "the request was wrong"
_TRANSPORT_ERRORS = frozenset(
    {
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "_TIMED_OUT",
        "_RESOLVE",
        "REQUEST_TIMED_OUT",
        "_MSG_TIMED_OUT",
        "NETWORK_EXCEPTION",
    }
)


def transport_problem(exc: BaseException) -> Unreachable | None:
    """``exc`` (or an exception in its chain) as one line when the broker or the registry
    stopped answering in the middle of a command; None for anything else."""
    cause: BaseException | None = exc
    while cause is not None:
        if _is_http_transport_error(cause):
            return Unreachable(
                f"the schema registry did not answer ({_first_line(cause)}): check that it "
                "runs and HALLPASS_SCHEMA_REGISTRY_URL, then run the command again"
            )
        if (
            isinstance(cause, KafkaException)
            and cause.args
            and isinstance(cause.args[0], KafkaError)
            and cause.args[0].name() in _TRANSPORT_ERRORS
        ):
            return Unreachable(
                f"Kafka did not answer ({cause.args[0].str()}): check that the brokers run and "
                "HALLPASS_BOOTSTRAP_SERVERS, then run the command again"
            )
        cause = cause.__cause__ or cause.__context__
    return None


def _is_http_transport_error(exc: BaseException) -> bool:
    """An HTTP client's transport error (httpx, or the httpx fork confluent-kafka's registry
    client ships): the registry did not answer, as opposed to answering with an error."""
    package = type(exc).__module__.split(".")[0]
    return package in ("httpx", "httpx2", "httpcore", "httpcore2") and any(
        base.__name__ in ("TransportError", "NetworkError", "TimeoutException")
        for base in type(exc).__mro__
    )

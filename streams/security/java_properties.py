"""The ``client.properties`` file Java and Confluent tools use, read as hallpass's settings.

One file configures cluster and registry, as ``kafka-console-consumer --consumer.config`` and
Confluent's serializers read it: ``bootstrap.servers``, ``security.protocol``,
``sasl.mechanism``, ``sasl.jaas.config`` (PLAIN and SCRAM login modules), ``ssl.*`` PEM
settings, ``schema.registry.url``, ``basic.auth.credentials.source``,
``basic.auth.user.info`` and ``schema.registry.ssl.*``. It is split into what librdkafka
takes (every confluent-kafka client), the schema registry client's settings, and where the
cluster and registry are. JKS/PKCS#12 trust and key stores are Java-only: they are refused
with a message that says to export a PEM CA. Pure: no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.errors import HallpassError

#: login modules of sasl.jaas.config that carry a user name and password librdkafka can use
_LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}
_JAAS = re.compile(
    r"^\s*(?P<module>[\w.$]+)\s+(?P<flag>required|requisite|sufficient|optional)"
    r"(?P<options>.*?);?\s*$",
    re.DOTALL,
)
_OPTION = re.compile(r'(?P<key>[\w.]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s;]+))')
#: Java settings with no librdkafka meaning that would otherwise be passed on and refused
_JAVA_ONLY_IGNORED = frozenset(
    {
        "key.deserializer",
        "value.deserializer",
        "key.serializer",
        "value.serializer",
        "specific.avro.reader",
        "use.latest.version",
        "auto.register.schemas",
        "ssl.endpoint.identification.algorithm",  # librdkafka: ssl.endpoint.identification...
        "client.dns.lookup",
    }
)


class JavaPropertiesError(HallpassError, ValueError):
    """A client.properties setting hallpass cannot use; the message says what to do."""


@dataclass(frozen=True)
class ClientFile:
    """What a client.properties file says, split by who uses it."""

    #: librdkafka properties of every Kafka client (may hold a password)
    kafka: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: schema registry client settings (``basic.auth.user.info``, ``ssl.ca.location``, ...)
    registry: Mapping[str, str] = field(default_factory=dict, repr=False)
    bootstrap_servers: str | None = None
    schema_registry_url: str | None = None


def is_java_style(props: Mapping[str, str]) -> bool:
    """Whether a properties file is written for Java/Confluent tools rather than librdkafka."""
    return any(
        key in props
        for key in (
            "sasl.jaas.config",
            "schema.registry.url",
            "basic.auth.user.info",
            "ssl.truststore.location",
            "bootstrap.servers",
        )
    )


def translate(props: Mapping[str, str], source: str = "client properties file") -> ClientFile:
    """Split a client.properties file into librdkafka, registry and location settings."""
    kafka: dict[str, str] = {}
    registry: dict[str, str] = {}
    for key, value in props.items():
        if key in (
            "bootstrap.servers",
            "schema.registry.url",
            "sasl.jaas.config",
            "basic.auth.credentials.source",
            "basic.auth.user.info",
        ):
            continue
        if key.startswith(("ssl.truststore.", "ssl.keystore.")):
            raise JavaPropertiesError(
                f"{source}: {key} is a Java key store, which librdkafka cannot read; export "
                "the CA as PEM (`keytool -exportcert -rfc -alias <ca> -keystore <truststore> "
                "> ca.pem`) and give ssl.ca.location=ca.pem instead (and ssl.certificate."
                "location / ssl.key.location for a client certificate)"
            )
        if key.startswith("schema.registry.ssl."):
            _registry_ssl(key, value, registry, source)
            continue
        if key in _JAVA_ONLY_IGNORED:
            continue
        kafka[key] = value  # librdkafka names these settings as Java does
    jaas = props.get("sasl.jaas.config")
    if jaas is not None:
        kafka.update(_from_jaas(jaas, kafka.get("sasl.mechanism"), source))
    registry.update(_registry_credentials(props, kafka, source))
    bootstrap = props.get("bootstrap.servers")
    registry_url = props.get("schema.registry.url")
    if registry_url is not None and "," in registry_url:
        registry_url = registry_url.split(",")[0].strip()  # the first of several
    return ClientFile(
        kafka=kafka,
        registry=registry,
        bootstrap_servers=bootstrap.strip() if bootstrap else None,
        schema_registry_url=registry_url.rstrip("/") if registry_url else None,
    )


def _registry_credentials(
    props: Mapping[str, str], kafka: Mapping[str, str], source: str
) -> dict[str, str]:
    """``basic.auth.*`` as the registry client's ``basic.auth.user.info``."""
    kind = props.get("basic.auth.credentials.source", "USER_INFO").strip().upper()
    user_info = props.get("basic.auth.user.info")
    if user_info is not None:
        if kind not in ("USER_INFO", "URL"):
            raise JavaPropertiesError(
                f"{source}: basic.auth.credentials.source={kind} is not supported: use "
                "USER_INFO with basic.auth.user.info=<user>:<password>"
            )
        if ":" not in user_info:
            raise JavaPropertiesError(f"{source}: basic.auth.user.info must be <user>:<password>")
        return {"basic.auth.user.info": user_info}
    if kind == "SASL_INHERIT" and "sasl.username" in kafka and "sasl.password" in kafka:
        return {"basic.auth.user.info": f"{kafka['sasl.username']}:{kafka['sasl.password']}"}
    return {}


def _registry_ssl(key: str, value: str, registry: dict[str, str], source: str) -> None:
    setting = key.removeprefix("schema.registry.")
    if setting.startswith(("ssl.truststore.", "ssl.keystore.")):
        raise JavaPropertiesError(
            f"{source}: {key} is a Java key store; export the registry's CA as PEM and give "
            "schema.registry.ssl.ca.location=ca.pem instead"
        )
    if setting in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"):
        registry[setting] = value
    elif setting == "ssl.endpoint.identification.algorithm":
        return
    else:
        raise JavaPropertiesError(
            f"{source}: {key} is not a setting hallpass's registry client takes (it takes "
            "schema.registry.ssl.ca.location, .certificate.location and .key.location)"
        )


def _from_jaas(jaas: str, mechanism: str | None, source: str) -> dict[str, str]:
    """``sasl.jaas.config`` of a PLAIN or SCRAM login module as librdkafka's user and
    password (the mechanism stays what ``sasl.mechanism`` says)."""
    match = _JAAS.match(jaas)
    if match is None:
        raise JavaPropertiesError(
            f"{source}: sasl.jaas.config cannot be read: expected "
            '"<LoginModule> required username=\\"...\\" password=\\"...\\";"'
        )
    module = match.group("module")
    mechanisms = _LOGIN_MODULES.get(module)
    if mechanisms is None:
        raise JavaPropertiesError(
            f"{source}: sasl.jaas.config uses {module}, which librdkafka cannot use: hallpass "
            "takes the PLAIN and SCRAM login modules (for OAUTHBEARER or GSSAPI give "
            "librdkafka's sasl.oauthbearer.* or sasl.kerberos.* settings instead)"
        )
    if mechanism is not None and mechanism.upper() not in mechanisms:
        raise JavaPropertiesError(
            f"{source}: sasl.mechanism={mechanism} does not match the login module {module} "
            f"(it is for {' or '.join(mechanisms)})"
        )
    options = {
        m.group("key"): (m.group("quoted") if m.group("quoted") is not None else m.group("bare"))
        for m in _OPTION.finditer(match.group("options"))
    }
    options = {k: re.sub(r"\\(.)", r"\1", v) for k, v in options.items()}
    if "username" not in options or "password" not in options:
        raise JavaPropertiesError(
            f'{source}: sasl.jaas.config needs username="..." and password="..."'
        )
    out = {"sasl.username": options["username"], "sasl.password": options["password"]}
    if mechanism is None:
        out["sasl.mechanism"] = mechanisms[-1]
    return out

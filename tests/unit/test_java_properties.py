"""A client.properties file written for Java and Confluent tools configures hallpass too."""

from __future__ import annotations

import pytest

from streams.security.java_properties import JavaPropertiesError, is_java_style, translate

CONFLUENT_CLOUD_STYLE = {
    "bootstrap.servers": "pkc-1.example.com:9092",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "PLAIN",
    "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="KEY" password="se\\"cret";',
    "schema.registry.url": "https://psrc-1.example.com/",
    "basic.auth.credentials.source": "USER_INFO",
    "basic.auth.user.info": "SRKEY:SRSECRET",
    "schema.registry.ssl.ca.location": "/etc/ssl/registry-ca.pem",
    "client.dns.lookup": "use_all_dns_ips",
    "key.deserializer": "org.apache.kafka.common.serialization.StringDeserializer",
}


def test_one_file_configures_cluster_and_registry() -> None:
    assert is_java_style(CONFLUENT_CLOUD_STYLE)
    found = translate(CONFLUENT_CLOUD_STYLE)
    assert found.bootstrap_servers == "pkc-1.example.com:9092"
    assert found.schema_registry_url == "https://psrc-1.example.com"
    assert dict(found.kafka) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "KEY",
        "sasl.password": 'se"cret',
    }
    assert dict(found.registry) == {
        "basic.auth.user.info": "SRKEY:SRSECRET",
        "ssl.ca.location": "/etc/ssl/registry-ca.pem",
    }
    assert "SRSECRET" not in repr(found) and 'se"cret' not in repr(found)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", None])
def test_scram_login_modules(mechanism: str | None) -> None:
    props = {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "ca.pem",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
        "required username='v' password=pw;".replace("'", '"'),
    }
    if mechanism:
        props["sasl.mechanism"] = mechanism
    kafka = translate(props).kafka
    assert (kafka["sasl.username"], kafka["sasl.password"]) == ("v", "pw")
    assert kafka["sasl.mechanism"] == (mechanism or "SCRAM-SHA-512")
    assert kafka["ssl.ca.location"] == "ca.pem"


@pytest.mark.parametrize(
    ("props", "said"),
    [
        ({"ssl.truststore.location": "/x.jks", "ssl.truststore.password": "p"}, "ssl.ca.location"),
        ({"schema.registry.ssl.truststore.location": "/x.jks"}, "schema.registry.ssl.ca.location"),
        (
            {"sasl.jaas.config": "com.sun.security.auth.module.Krb5LoginModule required;"},
            "PLAIN and SCRAM",
        ),
        (
            {
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
                'required username="a" password="b";',
            },
            "does not match",
        ),
        (
            {
                "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule "
                'required username="a";'
            },
            "password",
        ),
        ({"basic.auth.user.info": "no-colon"}, "<user>:<password>"),
        ({"basic.auth.credentials.source": "BEARER", "basic.auth.user.info": "a:b"}, "USER_INFO"),
    ],
)
def test_what_librdkafka_cannot_use_is_refused_with_what_to_do(
    props: dict[str, str], said: str
) -> None:
    with pytest.raises(JavaPropertiesError, match=said) as refused:
        translate(props, "client.properties")
    assert "client.properties" in str(refused.value)
    for secret in ("p", "b"):
        assert f"={secret}" not in str(refused.value)


def test_registry_credentials_inherited_from_sasl() -> None:
    found = translate(
        {
            "basic.auth.credentials.source": "SASL_INHERIT",
            "sasl.username": "u",
            "sasl.password": "pw",
            "security.protocol": "SASL_SSL",
        }
    )
    assert found.registry["basic.auth.user.info"] == "u:pw"


def test_a_librdkafka_file_is_not_taken_for_a_java_one() -> None:
    assert not is_java_style(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin",
            "sasl.password": "x",
        }
    )

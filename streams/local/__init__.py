"""The local development stack (`hallpass up`): one Kafka broker (KRaft) and an Apicurio
schema registry on 127.0.0.1, plaintext or secure.

``artifacts`` (what to run: Maven Central downloads, Java), ``processes`` (running it),
``broker`` (broker configuration), ``security`` (credentials and TLS), ``stack`` (the stack
itself: up, down, status).
"""

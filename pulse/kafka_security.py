"""The one place that turns Settings into Kafka client arguments (issue 21, "Secured Kafka").

Every Kafka client of the pipeline gets its connection arguments here, so SASL and TLS are
configured once, from ``Settings.kafka_security_protocol`` and the ``kafka_sasl_*`` /
``kafka_ssl_*`` fields:

* ``kafka_python_kwargs(settings)``: kafka-python's KafkaProducer / KafkaConsumer /
  KafkaAdminClient (front doors, importer, CLI, re-drive, tests);
* ``aiokafka_kwargs(settings)``: AIOKafkaProducer / AIOKafkaConsumer (simulator output);
* ``faust_broker_kwargs(settings)``: ``broker_credentials`` for the Faust app (the worker).

All three use the same ``ssl.SSLContext`` recipe (``ssl_context``): the CA file (or the
system's CAs), hostname checking, an optional client certificate.

``check_connection(settings)`` is the preflight of the long-running clients. Why it exists:
with a wrong password or an untrusted certificate the client libraries do not say so, they
retry or generalise. Measured against the real broker without the preflight: kafka-python
3.0.12 logs each refused bootstrap connection and tries again until its bootstrap timeout,
so `pulse topics` ended after 30.2 s with a traceback "Unable to bootstrap" (exit 1); the
API's producer does the same per attempt (5 s), so the API would start and answer 503 for
ever; the Faust worker (aiokafka) exited after 2 s with "Unable to bootstrap", the SASL
reason only in an earlier log line. The preflight makes one connection
itself, within ``timeout_s``, and raises an error that says what is wrong: ``KafkaAuthError``
(bootstrap, mechanism and user, never the password), ``KafkaTLSError`` (the CA file), or
``KafkaUnreachableError``. ``preflight(settings)`` runs it only for a secured protocol:
PLAINTEXT has no password or certificate to be wrong, and the local stack's behaviour when
the broker is down (clients wait for it) stays as it was.
"""
from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any

from pulse.config import Settings


class KafkaConnectError(RuntimeError):
    """The preflight could not talk to Kafka the way the settings say; the message says why."""


class KafkaAuthError(KafkaConnectError):
    """The broker refused the SASL login (wrong user, password or mechanism)."""


class KafkaTLSError(KafkaConnectError):
    """The TLS handshake failed (certificate not trusted, wrong host name, not a TLS listener)."""


class KafkaUnreachableError(KafkaConnectError):
    """No bootstrap server accepted a TCP connection (or answered) in time."""


class _RedactedConfigLog(logging.Filter):
    """kafka-python 3.0.12's KafkaAdminClient logs its whole configuration at DEBUG
    (kafka/admin/client.py: "Starting KafkaAdminClient with configuration: %s"), the SASL
    password with it: an operator who turns DEBUG on to find a connection problem would
    write the password into the worker's log. The record keeps everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        # a lone mapping argument is kept as record.args itself, not in a tuple (LogRecord)
        if isinstance(record.args, dict):
            record.args = self._masked(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(self._masked(a) for a in record.args)
        return True

    @staticmethod
    def _masked(arg: Any) -> Any:
        if isinstance(arg, dict) and arg.get("sasl_plain_password"):
            return {**arg, "sasl_plain_password": "***"}
        return arg


# A logger's filter sees only the records of that logger: the one that logs the configuration.
logging.getLogger("kafka.admin.client").addFilter(_RedactedConfigLog())


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def is_secured(settings: Settings) -> bool:
    return settings.kafka_security_protocol != "PLAINTEXT"


def bootstrap_servers(settings: Settings) -> list[str]:
    return [h.strip() for h in settings.kafka_bootstrap.split(",") if h.strip()]


def sasl_password(settings: Settings) -> str:
    """The SASL password: the content of KAFKA_SASL_PASSWORD_FILE if set (read each time a
    client is made, so a rotated secret is picked up by the next client), else
    KAFKA_SASL_PASSWORD. A trailing newline (``echo secret > file``) is not part of it."""
    if settings.kafka_sasl_password_file:
        return Path(settings.kafka_sasl_password_file).read_text(encoding="utf-8").rstrip("\r\n")
    return settings.kafka_sasl_password


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context (None when the protocol does not use TLS)."""
    if not uses_tls(settings):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_cafile or None)
    # Verification of the certificate chain stays on (CERT_REQUIRED) whatever this says;
    # only the host-name match can be turned off (a cluster addressed by IP without IP SANs).
    ctx.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile:
        ctx.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return ctx


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """bootstrap_servers and security arguments for kafka-python's clients."""
    kw: dict[str, Any] = {"bootstrap_servers": bootstrap_servers(settings),
                          "security_protocol": settings.kafka_security_protocol}
    if uses_tls(settings):
        kw["ssl_context"] = ssl_context(settings)
        kw["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
    if uses_sasl(settings):
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=sasl_password(settings))
    return kw


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """bootstrap_servers and security arguments for aiokafka's clients (which require an
    ssl_context for the TLS protocols)."""
    kw: dict[str, Any] = {"bootstrap_servers": bootstrap_servers(settings),
                          "security_protocol": settings.kafka_security_protocol}
    if uses_tls(settings):
        kw["ssl_context"] = ssl_context(settings)
    if uses_sasl(settings):
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=sasl_password(settings))
    return kw


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """``broker_credentials`` for faust.App (faust-streaming 0.15.3, faust/auth.py): SSLCredentials
    for SSL, SASLCredentials for the SASL protocols (SASL_SSL when it carries an ssl_context,
    SASL_PLAINTEXT without). Empty for PLAINTEXT (Faust's default)."""
    import faust
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(ssl_context(settings))}
    return {"broker_credentials": faust.SASLCredentials(
        username=settings.kafka_sasl_username, password=sasl_password(settings),
        mechanism=settings.kafka_sasl_mechanism, ssl_context=ssl_context(settings))}


def describe(settings: Settings) -> str:
    """Where and how a client connects, for messages (never the password)."""
    out = f"bootstrap {settings.kafka_bootstrap}, {settings.kafka_security_protocol}"
    if uses_sasl(settings):
        out += f", mechanism {settings.kafka_sasl_mechanism}, user {settings.kafka_sasl_username!r}"
    return out


def _cafile(settings: Settings) -> str:
    return f"KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}" if settings.kafka_ssl_cafile else \
        "the system's CA certificates (KAFKA_SSL_CAFILE not set)"


def _tcp(settings: Settings, deadline: float) -> tuple[str, int]:
    """The first bootstrap server that accepts a TCP connection."""
    problems = []
    for hp in bootstrap_servers(settings):
        host, _, port = hp.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)),
                                          timeout=max(0.5, min(3.0, deadline - time.monotonic()))):
                return host or "127.0.0.1", int(port)
        except (OSError, ValueError) as e:
            problems.append(f"{hp}: {e}")
    raise KafkaUnreachableError(f"Kafka unreachable ({describe(settings)}): {'; '.join(problems)}")


def _tls_handshake(settings: Settings, host: str, port: int, deadline: float) -> None:
    """One TLS handshake with the bootstrap server: the certificate error, if any, in words."""
    ctx = ssl_context(settings)
    assert ctx is not None
    try:
        with socket.create_connection((host, port), timeout=max(0.5, deadline - time.monotonic())) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                pass
    except ssl.SSLCertVerificationError as e:
        hint = " (or KAFKA_SSL_CHECK_HOSTNAME=0 if the brokers are addressed by a name not in their certificate)" \
            if "hostname" in str(e.verify_message).lower() or "ip address" in str(e.verify_message).lower() else ""
        raise KafkaTLSError(f"TLS: the certificate of {host}:{port} is not trusted by {_cafile(settings)}: "
                            f"{e.verify_message}{hint}") from None
    except ssl.SSLError as e:
        raise KafkaTLSError(f"TLS handshake with {host}:{port} failed ({e.reason or e}); is that a TLS "
                            f"listener ({settings.kafka_security_protocol}), and does {_cafile(settings)} "
                            "hold its CA?") from None
    except (socket.timeout, TimeoutError):
        raise KafkaTLSError(f"TLS handshake with {host}:{port} timed out: is that a TLS listener "
                            f"({settings.kafka_security_protocol})?") from None
    except OSError as e:
        raise KafkaUnreachableError(f"Kafka unreachable ({describe(settings)}): {host}:{port}: {e}") from None


def _login(settings: Settings, host: str, port: int, deadline: float) -> None:
    """Log in over one aiokafka connection (``aiokafka.conn.create_conn`` runs the SASL
    handshake and raises the broker's verdict as an exception). Why not a client's
    bootstrap: kafka-python 3.0.12 and aiokafka 0.14 both catch that exception there, log
    it and retry until their bootstrap times out, then report "Unable to bootstrap", which
    reads like a network problem."""
    import asyncio

    from aiokafka import errors as aerr
    from aiokafka.conn import create_conn

    kw = aiokafka_kwargs(settings)
    kw.pop("bootstrap_servers")
    ms = max(1000, int((deadline - time.monotonic()) * 1000))

    async def login() -> None:
        conn = await asyncio.wait_for(create_conn(host, port, client_id="pulse-preflight", request_timeout_ms=ms,
                                                  **kw), ms / 1000)
        conn.close()

    try:
        # its own loop in its own thread: callers may be inside a running loop (the API's lifespan)
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(1, thread_name_prefix="kafka-preflight") as pool:
            pool.submit(asyncio.run, login()).result()
    except (aerr.SaslAuthenticationFailed, aerr.UnsupportedSaslMechanismError, aerr.IllegalSaslStateError) as e:
        raise KafkaAuthError(f"Kafka refused the SASL login ({describe(settings)}): {_scrub(str(e), settings)}. "
                             "Check KAFKA_SASL_USERNAME, the password (KAFKA_SASL_PASSWORD_FILE or "
                             "KAFKA_SASL_PASSWORD) and KAFKA_SASL_MECHANISM") from None
    except (asyncio.TimeoutError, TimeoutError, aerr.KafkaError, OSError) as e:
        raise KafkaUnreachableError(f"Kafka did not complete a login within {ms / 1000:.0f} s ({describe(settings)}): "
                                    f"{type(e).__name__}: {_scrub(str(e), settings)}") from None


def _metadata(settings: Settings, deadline: float) -> None:
    """The cluster answers a metadata request through kafka-python (the library most of the
    clients use) with these arguments."""
    from kafka import KafkaAdminClient
    from kafka import errors as kerr
    ms = max(1000, int((deadline - time.monotonic()) * 1000))
    admin = None
    try:
        admin = KafkaAdminClient(**kafka_python_kwargs(settings), client_id="pulse-preflight",
                                 request_timeout_ms=ms, bootstrap_timeout_ms=ms, reconnect_backoff_max_ms=1000)
        admin.describe_cluster()
    except kerr.KafkaError as e:
        raise KafkaUnreachableError(f"Kafka did not answer a metadata request within {ms / 1000:.0f} s "
                                    f"({describe(settings)}): {type(e).__name__}: {_scrub(str(e), settings)}") from None
    finally:
        if admin is not None:
            admin.close()


def _scrub(text: str, settings: Settings) -> str:
    # Belt and braces: no library message we have seen contains the password, but the
    # message goes to logs and terminals, so make sure.
    try:
        pw = sasl_password(settings) if uses_sasl(settings) else ""
    except OSError:
        pw = ""
    return text.replace(pw, "***") if pw else text


def check_connection(settings: Settings, timeout_s: float = 10.0) -> None:
    """Connect once as the settings say, within ``timeout_s``: TCP, then the TLS handshake
    (SSL, SASL_SSL), then a metadata request (which logs in over SASL). Raises
    KafkaUnreachableError, KafkaTLSError or KafkaAuthError with a message that names the
    bootstrap, the CA file, the mechanism and the user, never the password."""
    deadline = time.monotonic() + timeout_s
    host, port = _tcp(settings, deadline)
    if uses_tls(settings):
        _tls_handshake(settings, host, port, deadline)
    if uses_sasl(settings):
        _login(settings, host, port, deadline)
    _metadata(settings, deadline)


def preflight(settings: Settings, timeout_s: float = 10.0) -> None:
    """check_connection for a secured protocol; nothing for PLAINTEXT (see the module docstring)."""
    if is_secured(settings):
        check_connection(settings, timeout_s)

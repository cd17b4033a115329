"""The real Apache Kafka broker with a SASL_SSL (SCRAM-SHA-512) listener, for
tests/integration/test_kafka_security.py.

Certificates are made here, per test session, with the ``cryptography`` package: a CA, and
a server certificate it signs for 127.0.0.1 / localhost, stored for the broker as a PKCS12
keystore; clients get the CA as PEM. A second, unrelated CA (``other_ca_pem``) is what a
client with the wrong CA file trusts. SCRAM users are created when the storage is formatted
(deploy/local/kafka_broker.py, BrokerSecurity).
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.local.kafka_broker import BrokerSecurity, KafkaBroker, fetch_jars
from pulse.config import Settings
from pulse.procs import free_port


@dataclass
class Certificates:
    ca_pem: Path
    other_ca_pem: Path
    keystore: Path
    keystore_password: str


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "motcua-pulse tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_certificates(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Certificates:
    """A CA, a server certificate for ``hosts`` signed by it (PKCS12 keystore), and another CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("motcua-pulse test CA")
    _, other_cert = _ca("some other CA")
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder().subject_name(_name("kafka broker")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # serverAuth for clients; clientAuth because the broker also connects to itself
            # over this listener (inter-broker) presenting the same certificate
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "other-ca.pem").write_bytes(other_cert.public_bytes(pem))
    password = secrets.token_hex(12)
    # PKCS12 with the CA in the chain, encrypted the way Java 17's keystore reader accepts
    # (AES-256 + SHA-256 MAC; the legacy RC2/3DES default is also readable, but need not be).
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(10_000).key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                  .hmac_hash(hashes.SHA256()).build(password.encode()))
    (folder / "broker.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"broker", key, cert, [ca_cert], encryption))
    return Certificates(folder / "ca.pem", folder / "other-ca.pem", folder / "broker.p12", password)


@dataclass
class SecureBroker:
    broker: KafkaBroker
    certs: Certificates
    users: dict[str, str]          # SCRAM-SHA-512 name -> password

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def settings(self, base: Settings | None = None, user: str = "pulse") -> Settings:
        """``base`` pointed at the SASL_SSL listener, logged in as ``user``."""
        return self.broker.client_settings(base, user)

    def env(self, settings: Settings) -> dict[str, str]:
        """The security variables of ``settings`` (for a child process)."""
        keys = ("KAFKA_BOOTSTRAP", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
                "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE",
                "KAFKA_SSL_KEYFILE", "KAFKA_SSL_CHECK_HOSTNAME")
        full = settings.to_env()
        return {k: full[k] for k in keys}

    def stop(self) -> None:
        self.broker.stop()


def start_secure_broker(home: Path | None = None) -> SecureBroker:
    home = home or Path(tempfile.mkdtemp(prefix="pulse-kafka-secure-"))
    certs = make_certificates(home / "tls")
    users = {"admin": secrets.token_hex(12), "pulse": secrets.token_hex(12)}
    security = BrokerSecurity(keystore=certs.keystore, keystore_password=certs.keystore_password,
                              truststore_pem=certs.ca_pem, scram_users=users, inter_broker_user="admin")
    broker = KafkaBroker(home / "broker", free_port(), free_port(), libs=fetch_jars(), security=security)
    broker.start()
    return SecureBroker(broker, certs, users)

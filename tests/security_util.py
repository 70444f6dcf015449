"""Shared helpers for the security tests: TLS material made at test time
(never committed) and a broker with SASL/TLS listeners.

    certs = make_certs(tmp_path)                      # CA, server, client certs
    sb = start_secure_broker(broker_factory, tmp_path, users={"alice": "pw"})
    sb.bootstrap("SASL_SSL")                          # "127.0.0.1:PORT"
    sb.client_config("SASL_SSL", "alice", "pw")       # confluent-kafka settings

The broker always has a PLAINTEXT listener on `Broker.port` (so the
fixture's readiness check works), plus SASL_PLAINTEXT, SSL and SASL_SSL
listeners on free ports picked here.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import HOST, Broker, free_port

PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")


def _name(cn: str, ou: str | None = None, o: str | None = None) -> x509.Name:
    # Issued in the usual O, OU, CN order; RFC 2253 prints it reversed
    # (CN=...,OU=...,O=...).
    attrs = []
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Certs:
    dir: Path
    ca: Path
    ca_key: object = field(repr=False)
    ca_cert: object = field(repr=False)
    server_cert: Path = None
    server_key: Path = None

    def issue(self, name: str, subject: x509.Name, server: bool = False,
              days: int = 30) -> tuple[Path, Path]:
        """Issues a certificate signed by the CA; returns (cert, key) paths."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder()
             .subject_name(subject)
             .issuer_name(self.ca_cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if server:
            b = (b.add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                critical=False))
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                critical=False)
        cert = b.sign(self.ca_key, hashes.SHA256())
        cert_path, key_path = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
        return cert_path, key_path


def make_certs(dir: Path, ca_name: str = "Weir Test CA") -> Certs:
    """A fresh CA and a server certificate for 127.0.0.1/localhost."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = _name(ca_name, o="Weir Tests")
    ca_cert = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(subject)
               .public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, key_cert_sign=True, crl_sign=True,
                   content_commitment=False, key_encipherment=False, data_encipherment=False,
                   key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca = dir / f"{ca_name.replace(' ', '-').lower()}.pem"
    _write_cert(ca, ca_cert)
    certs = Certs(dir=dir, ca=ca, ca_key=ca_key, ca_cert=ca_cert)
    certs.server_cert, certs.server_key = certs.issue("server", _name("localhost", o="Weir"),
                                                      server=True)
    return certs


def client_cert(certs: Certs, cn: str = "alice", ou: str = "eng", o: str = "acme"):
    """A client certificate (cert, key paths) with subject CN=cn,OU=ou,O=o."""
    return certs.issue(f"client-{cn}", _name(cn, ou=ou, o=o))


def rsa_key_pem() -> tuple[object, bytes]:
    """An RSA key (for JWT signing) and its private PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return key, pem


@dataclass
class SecureBroker:
    broker: Broker
    ports: dict[str, int]
    certs: Certs
    users_file: Path

    def bootstrap(self, listener: str = "PLAINTEXT") -> str:
        return f"{HOST}:{self.ports[listener]}"

    def client_config(self, listener: str, user: str | None = None,
                      password: str | None = None, mechanism: str = "PLAIN",
                      **extra) -> dict:
        """confluent-kafka settings for `listener`."""
        conf = {"bootstrap.servers": self.bootstrap(listener),
                "security.protocol": listener}
        if listener in ("SSL", "SASL_SSL"):
            conf["ssl.ca.location"] = str(self.certs.ca)
        if listener.startswith("SASL"):
            conf["sasl.mechanisms"] = mechanism
            if user is not None:
                conf["sasl.username"] = user
                conf["sasl.password"] = password
        conf.update(extra)
        return conf

    def kafka_python_config(self, listener: str, user: str | None = None,
                            password: str | None = None, mechanism: str = "PLAIN") -> dict:
        """kafka-python settings for `listener`."""
        conf = {"bootstrap_servers": self.bootstrap(listener),
                "security_protocol": listener}
        if listener in ("SSL", "SASL_SSL"):
            conf["ssl_cafile"] = str(self.certs.ca)
        if listener.startswith("SASL"):
            conf["sasl_mechanism"] = mechanism
            if user is not None:
                conf["sasl_plain_username"] = user
                conf["sasl_plain_password"] = password
        return conf


def write_users(path: Path, users: dict[str, str]) -> Path:
    path.write_text("# written by the test\n" + "".join(f"{u}={p}\n" for u, p in users.items()))
    return path


def start_secure_broker(broker_factory, dir: Path, users: dict[str, str] | None = None,
                        protocols=PROTOCOLS, sets: dict[str, str] | None = None,
                        certs: Certs | None = None, name: str | None = None,
                        start: bool = True) -> SecureBroker:
    """A weir broker with one listener per protocol in `protocols`
    (PLAINTEXT always first, on the fixture's port), TLS material from
    `certs` (made fresh if not given), PLAIN users from `users`, and extra
    broker configs `sets`."""
    dir = Path(dir)
    certs = certs or make_certs(dir / "certs")
    users_file = write_users(dir / "plain-users.txt", users or {"alice": "alice-secret"})
    b = broker_factory(name=name, start=False)
    ports = {"PLAINTEXT": b.port}
    for p in protocols:
        if p != "PLAINTEXT":
            ports[p] = free_port()
    listeners = ",".join(f"{p}://{HOST}:{port}" for p, port in ports.items())
    configs = {
        "listeners": listeners,
        "ssl.certificate.location": str(certs.server_cert),
        "ssl.key.location": str(certs.server_key),
        "sasl.plain.credentials.file": str(users_file),
    }
    configs.update(sets or {})
    for k, v in configs.items():
        b.args += ["--set", f"{k}={v}"]
    if start:
        b.start()
    return SecureBroker(broker=b, ports=ports, certs=certs, users_file=users_file)

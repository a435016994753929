"""Throw-away TLS material for private servers: a CA, a server and a client certificate.

:func:`generate_tls_files` writes, into a directory, a self-signed CA and two certificates it
signed: one for the server (valid for ``127.0.0.1``, ``::1`` and ``localhost``; usable as a
client certificate too, since cluster nodes, replicas and sentinels present it to each other)
and one for a client (mutual TLS)::

    files = generate_tls_files(tmp_path)
    with EmbeddedServer(tls=files, tls_auth_clients="yes") as server:
        client = redis.Redis.from_url(server.tls_url, **files.ssl_kwargs())

The certificates use ECDSA P-256 keys (fast to make) and are valid for 30 days from an hour
ago. They are for tests only: the CA key lies next to them. The ``cryptography`` package
(the ``crypto`` extra) is imported when :func:`generate_tls_files` is called.
"""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from memo_redis.exceptions import ConfigError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "AUTH_CLIENTS",
    "AuthClients",
    "TLSFiles",
    "check_auth_clients",
    "generate_tls_files",
    "require_cryptography",
]

AuthClients = Literal["yes", "no", "optional"]
"""The values of the server's ``tls-auth-clients`` option."""

AUTH_CLIENTS: tuple[AuthClients, ...] = ("yes", "no", "optional")
"""``yes``: a client must present a certificate the CA signed; ``no``: clients present none;
``optional``: a certificate, if presented, must be valid."""

_CRYPTO_HINT = 'pip install "memo_redis[crypto]"'
_VALIDITY = datetime.timedelta(days=30)
_BACKDATE = datetime.timedelta(hours=1)  # tolerate clocks slightly behind


def check_auth_clients(value: object) -> AuthClients:
    """``value`` if it is a ``tls-auth-clients`` value, else :class:`ConfigError`."""
    for allowed in AUTH_CLIENTS:
        if value == allowed:
            return allowed
    raise ConfigError(f"tls_auth_clients={value!r}: expected one of {AUTH_CLIENTS}")


def require_cryptography(purpose: str) -> None:
    """Raise :class:`ConfigError` naming ``purpose`` when ``cryptography`` is not installed."""
    if importlib.util.find_spec("cryptography") is None:
        raise ConfigError(f"{purpose} needs the cryptography package: {_CRYPTO_HINT}")


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the PEM files :func:`generate_tls_files` wrote (all in ``directory``)."""

    directory: str
    ca_cert: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def server_options(self, auth_clients: AuthClients = "no") -> dict[str, str]:
        """The server's TLS options (``tls-cert-file``, ...) as ``{name: value}``.

        The server certificate is also the one a node presents when it connects to another
        (replication, cluster bus, sentinels), so the options suit every node of a topology.
        """
        return {
            "tls-cert-file": self.server_cert,
            "tls-key-file": self.server_key,
            "tls-ca-cert-file": self.ca_cert,
            "tls-auth-clients": check_auth_clients(auth_clients),
        }

    def ssl_kwargs(self, *, certificate: bool = True) -> dict[str, str]:
        """redis-py's ``ssl_*`` keyword arguments for a client trusting this CA.

        With ``certificate`` the client presents the client certificate (mutual TLS). Pass
        them with a ``rediss://`` URL (``redis.Redis.from_url(url, **files.ssl_kwargs())``), or
        with ``ssl=True`` to ``redis.Redis``, ``RedisCluster`` and ``Sentinel``.
        """
        options = {"ssl_ca_certs": self.ca_cert}
        if certificate:
            options.update(ssl_certfile=self.client_cert, ssl_keyfile=self.client_key)
        return options

    def client_context(self, *, certificate: bool = True) -> ssl.SSLContext:
        """An :class:`ssl.SSLContext` trusting this CA (with the client certificate)."""
        context = ssl.create_default_context(cafile=self.ca_cert)
        if certificate:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


def generate_tls_files(directory: str | os.PathLike[str] | None = None) -> TLSFiles:
    """Write a throw-away CA, server and client certificate with their keys; return the paths.

    ``directory`` must exist; ``None`` makes a new temporary directory, which the caller
    removes. Files: ``ca.crt``, ``ca.key``, ``server.crt``, ``server.key``, ``client.crt``,
    ``client.key``; the keys are readable by the owner only.

    Raises:
        ConfigError: the ``cryptography`` package is not installed.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise ConfigError(
            f"TLS test certificates need the cryptography package: {_CRYPTO_HINT}"
        ) from exc

    folder = (
        tempfile.mkdtemp(prefix="memo-redis-tls-") if directory is None else os.fspath(directory)
    )
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "memo_redis test"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    def sign(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Certificate | None,
        issuer_key: ec.EllipticCurvePrivateKey,
        *,
        usages: list[x509.ObjectIdentifier] | None,
        hosts: bool = False,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(subject) if issuer is None else issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        )
        is_ca = issuer is None
        builder = builder.add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True
        ).add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def write(filename: str, data: bytes, mode: int) -> str:
        path = os.path.join(folder, filename)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def write_pair(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        paths[f"{stem}_cert"] = write(
            f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644
        )
        paths[f"{stem}_key"] = write(
            f"{stem}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o600,
        )

    paths: dict[str, str] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = sign("memo_redis test CA", ca_key, None, ca_key, usages=None)
    write_pair("ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = sign(
        "memo_redis test server",
        server_key,
        ca,
        ca_key,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        hosts=True,
    )
    write_pair("server", server, server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = sign(
        "memo_redis test client",
        client_key,
        ca,
        ca_key,
        usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    write_pair("client", client, client_key)
    return TLSFiles(directory=folder, **paths)

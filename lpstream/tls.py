"""TLS for `serve`: the server's SSL context, and a self-signed certificate for a LAN.

Browsers give the camera only to secure pages (https:// or http://localhost), so a colleague
on the LAN needs https. `python -m lpstream cert` writes a self-signed certificate naming this
machine's host name and addresses; each browser then accepts it once (or imports `cert.pem`).
For a public deployment use a real certificate (e.g. Let's Encrypt) or a reverse proxy.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import socket
import ssl
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEFAULT_DAYS = 365


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS server context for the HTTP/websocket port (TLS 1.2+, the default ciphers)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def local_names() -> list[str]:
    """This machine's host names and non-loopback IPv4 addresses, plus localhost."""
    names = ["localhost", "127.0.0.1", socket.gethostname()]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        names += [str(info[4][0]) for info in infos]
    except OSError:
        pass
    # The address the default route leaves from (no packet is sent by connecting UDP).
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            names.append(probe.getsockname()[0])
    except OSError:
        pass
    return list(dict.fromkeys(names))


def make_self_signed(
    cert_path: Path, key_path: Path, names: list[str], days: int = DEFAULT_DAYS
) -> None:
    """Write a self-signed P-256 certificate valid for `names` (DNS names and IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"lpstream {names[0]}")])
    alternative: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lpstream cert",
        description="Write a self-signed certificate for trying `serve --tls-cert` on a LAN.",
    )
    parser.add_argument("--out", default="tls", help="folder for cert.pem and key.pem (tls/)")
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        help="extra host name or IP address to include (repeatable); this machine's are added",
    )
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    names = list(dict.fromkeys([*args.name, *local_names()]))
    make_self_signed(out / "cert.pem", out / "key.pem", names, args.days)
    print(f"wrote {out / 'cert.pem'} and {out / 'key.pem'} for {', '.join(names)}")
    print(
        f"serve with: python -m lpstream.serve --host 0.0.0.0 --tls-cert {out / 'cert.pem'} "
        f"--tls-key {out / 'key.pem'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

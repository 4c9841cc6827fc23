"""Mutual TLS between the agent and the rctl servers (docs/rpc.md, "Transport").

The client opens TCP and starts a TLS 1.3 handshake at once (the server
tells TLS from plaintext by the ClientHello's first byte, 0x16).  It checks
the server's certificate against the cluster CA with the host name
``server.rctl`` (every server certificate carries that DNS SAN) and then
insists on a URI SAN ``spiffe://rctl/server/<server-id>``: a certificate the
CA issued to an agent or an operator does not make its holder a server.  It
presents its own certificate, whose URI SAN ``spiffe://rctl/agent/<node-id>``
is the only node the server lets it act for.

Certificates come from ``rctl tls ca create`` and ``rctl tls cert create``.
:meth:`ClientTLS.load` reads them once at startup and fails with one
sentence (:class:`TLSConfigError`) when a file is missing, malformed or does
not fit the others.
"""

from __future__ import annotations

import base64
import binascii
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_NAME = "server.rctl"
"""The host name every server certificate is issued for (DNS SAN)."""

SERVER_URI_PREFIX = "spiffe://rctl/server/"
AGENT_URI_PREFIX = "spiffe://rctl/agent/"


class TLSConfigError(Exception):
    """A TLS file cannot be used; the message is one sentence for the operator."""


@dataclass(frozen=True)
class CertIdentity:
    """The names in a certificate that rctl cares about."""

    common_name: str = ""
    dns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()

    def with_prefix(self, prefix: str) -> str | None:
        """The rest of the first URI SAN starting with ``prefix`` (None if none)."""
        for uri in self.uris:
            if uri.startswith(prefix) and len(uri) > len(prefix):
                return uri[len(prefix) :]
        return None


def peer_identity(peercert: Mapping[str, Any] | None) -> CertIdentity:
    """The identity in an ``SSLObject.getpeercert()`` dictionary."""
    if not peercert:
        return CertIdentity()
    cn = ""
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = str(value)
    sans = peercert.get("subjectAltName", ())
    return CertIdentity(
        common_name=cn,
        dns=tuple(str(v) for k, v in sans if k == "DNS"),
        uris=tuple(str(v) for k, v in sans if k == "URI"),
    )


# ---- reading our own certificate ---------------------------------------
# The ssl module verifies peers but has no public way to read a certificate
# file, and the agent depends on nothing but msgpack; the few fields it needs
# (subject CN, SAN DNS names and URIs) come from a small DER walk.

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)
_OID_CN = bytes.fromhex("550403")  # 2.5.4.3
_OID_SAN = bytes.fromhex("551d11")  # 2.5.29.17
_SEQUENCE, _SET, _OID, _OCTETS, _BOOLEAN = 0x30, 0x31, 0x06, 0x04, 0x01
_EXPLICIT_VERSION, _EXPLICIT_EXTENSIONS = 0xA0, 0xA3
_SAN_DNS, _SAN_URI = 0x82, 0x86
_STRING_TAGS = {0x0C, 0x13, 0x14, 0x16, 0x1E}  # UTF8, Printable, T61, IA5, BMP


def _tlv(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``pos``."""
    if pos + 2 > end:
        raise ValueError("truncated DER element")
    tag, length = der[pos], der[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not expected in a certificate")
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 4 or pos + n > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(der[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise ValueError("DER element runs past its container")
    return tag, pos, pos + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, s, e = _tlv(der, pos, end)
        out.append((tag, s, e))
        pos = e
    return out


def _only(der: bytes, start: int, end: int, tag: int) -> tuple[int, int]:
    kids = _children(der, start, end)
    if len(kids) != 1 or kids[0][0] != tag:
        raise ValueError(f"expected one element of tag {tag:#x}")
    return kids[0][1], kids[0][2]


def _text(der: bytes, tag: int, start: int, end: int) -> str:
    raw = der[start:end]
    return raw.decode("utf-16-be" if tag == 0x1E else "utf-8", "replace")


def parse_certificate(der: bytes) -> CertIdentity:
    """Subject CN and SAN DNS names / URIs of a DER certificate; ValueError if malformed."""
    cert_start, cert_end = _only(der, 0, len(der), _SEQUENCE)
    parts = _children(der, cert_start, cert_end)
    if len(parts) != 3 or parts[0][0] != _SEQUENCE:
        raise ValueError("not an X.509 certificate")
    tbs = _children(der, parts[0][1], parts[0][2])
    i = 1 if tbs and tbs[0][0] == _EXPLICIT_VERSION else 0
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(tbs) < i + 6 or tbs[i + 4][0] != _SEQUENCE:
        raise ValueError("not an X.509 certificate")
    cn = ""
    _, subj_start, subj_end = tbs[i + 4]
    for tag, s, e in _children(der, subj_start, subj_end):
        if tag != _SET:
            continue
        for atag, a_s, a_e in _children(der, s, e):
            attr = _children(der, a_s, a_e) if atag == _SEQUENCE else []
            if len(attr) == 2 and attr[0][0] == _OID and der[attr[0][1] : attr[0][2]] == _OID_CN:
                vtag, v_s, v_e = attr[1]
                if vtag in _STRING_TAGS:
                    cn = _text(der, vtag, v_s, v_e)
    dns: list[str] = []
    uris: list[str] = []
    for tag, s, e in tbs[i + 6 :]:
        if tag != _EXPLICIT_EXTENSIONS:
            continue
        ext_start, ext_end = _only(der, s, e, _SEQUENCE)
        for etag, es, ee in _children(der, ext_start, ext_end):
            ext = _children(der, es, ee) if etag == _SEQUENCE else []
            if not ext or ext[0][0] != _OID or der[ext[0][1] : ext[0][2]] != _OID_SAN:
                continue
            value = ext[-1]
            if value[0] != _OCTETS:
                raise ValueError("malformed subjectAltName extension")
            names_start, names_end = _only(der, value[1], value[2], _SEQUENCE)
            for ntag, ns, ne in _children(der, names_start, names_end):
                if ntag == _SAN_DNS:
                    dns.append(der[ns:ne].decode("ascii", "replace"))
                elif ntag == _SAN_URI:
                    uris.append(der[ns:ne].decode("ascii", "replace"))
    return CertIdentity(common_name=cn, dns=tuple(dns), uris=tuple(uris))


def read_certificate(path: Path) -> CertIdentity:
    """The identity of the first certificate in a PEM file.

    :raises OSError: the file cannot be read.
    :raises ValueError: it holds no well-formed PEM certificate.
    """
    match = _PEM_CERT.search(path.read_bytes())
    if match is None:
        raise ValueError("no PEM certificate in it")
    try:
        der = base64.b64decode(re.sub(rb"\s+", b"", match.group(1)), validate=True)
    except binascii.Error:
        raise ValueError("its PEM certificate is not valid base64") from None
    return parse_certificate(der)


# ---- the client side ------------------------------------------------------


def _no_password() -> bytes:
    raise TLSConfigError("encrypted private keys are not supported")


@dataclass(frozen=True)
class ClientTLS:
    """What the agent needs to open mutual-TLS connections.

    :param context: client context (TLS 1.3 minimum, the cluster CA only,
        host name checking on, our certificate loaded).
    :param node_id: the node id in our certificate's URI SAN.
    """

    context: ssl.SSLContext = field(repr=False)
    node_id: str
    cert_file: Path

    @classmethod
    def load(
        cls,
        ca: Path,
        cert: Path,
        key: Path,
        *,
        names: tuple[str, str, str] = ("--tls-ca", "--tls-cert", "--tls-key"),
    ) -> ClientTLS:
        """Read the CA, our certificate and its key; raise TLSConfigError.

        ``names`` are what the error messages call the three files (flags or
        environment variables).
        """
        ca_name, cert_name, key_name = names
        for name, path in ((ca_name, ca), (cert_name, cert), (key_name, key)):
            try:
                with path.open("rb"):
                    pass
            except OSError as e:
                raise TLSConfigError(f"{name} {path}: cannot read it: {e.strerror or e}") from None
        try:
            ident = read_certificate(cert)
        except ValueError as e:
            raise TLSConfigError(f"{cert_name} {cert} is not a certificate: {e}") from None
        node_id = ident.with_prefix(AGENT_URI_PREFIX)
        if node_id is None:
            found = ", ".join(ident.uris) or "no URI SAN"
            raise TLSConfigError(
                f"{cert_name} {cert} is not an agent certificate (it needs the URI SAN "
                f"{AGENT_URI_PREFIX}<node-id>, found {found}); make one with "
                "`rctl tls cert create --role agent --name <node-id>`"
            )

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies peers, checks host names
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, ValueError) as e:
            raise TLSConfigError(f"{ca_name} {ca} is not a PEM CA certificate ({e})") from None
        try:
            ctx.load_cert_chain(str(cert), str(key), password=_no_password)
        except TLSConfigError as e:
            raise TLSConfigError(f"{key_name} {key}: {e}") from None
        except ssl.SSLError as e:
            reason = e.reason or str(e)
            if "MISMATCH" in reason.upper():
                raise TLSConfigError(
                    f"{key_name} {key} is not the private key of {cert_name} {cert}"
                ) from None
            raise TLSConfigError(
                f"{key_name} {key} (with {cert_name} {cert}) cannot be used: {reason}"
            ) from None
        return cls(context=ctx, node_id=node_id, cert_file=cert)

    def check_server(self, peercert: Mapping[str, Any] | None) -> str:
        """The server id in a verified peer certificate; raise ValueError if it
        is not a server certificate (an agent's or operator's, say)."""
        ident = peer_identity(peercert)
        server_id = ident.with_prefix(SERVER_URI_PREFIX)
        if server_id is None:
            found = ", ".join(ident.uris) or "no URI SAN"
            raise ValueError(
                f"its certificate is not a server certificate (no URI SAN "
                f"{SERVER_URI_PREFIX}<id>; it has {found})"
            )
        return server_id

"""Does a Kafka broker accept this login? One SASL exchange on a socket, nothing else.

kafka-python reports a refused login only in its own log: its clients raise the same
``KafkaTimeoutError("Unable to bootstrap ...")`` for a wrong password as for a broker that is down.
A client that failed to connect asks :func:`check_login` which it was, so a wrong password is named
as such instead of being retried as an outage. The exchange is Kafka's SaslHandshake (v1) and
SaslAuthenticate (v0) requests, with SCRAM (RFC 5802) or PLAIN tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

_SASL_HANDSHAKE, _SASL_AUTHENTICATE = 17, 36
_ILLEGAL_SASL_STATE = 34  # a SaslHandshake sent to a listener without SASL
_CLIENT_ID = b"hiverl-login-check"


class LoginRefused(Exception):
    """The broker answered and refused the credentials (the message is the broker's)."""


def _string(value: bytes) -> bytes:
    return struct.pack(">h", len(value)) + value


def _request(sock: socket.socket, api_key: int, version: int, correlation: int, body: bytes) -> bytes:
    header = struct.pack(">hhi", api_key, version, correlation) + _string(_CLIENT_ID)
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    size = struct.unpack(">i", _read(sock, 4))[0]
    response = _read(sock, size)
    if struct.unpack(">i", response[:4])[0] != correlation:
        raise ConnectionError("Kafka answered another request")
    return response[4:]


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:  # a broker closes the connection after a refused login
            raise ConnectionError("Kafka closed the connection")
        data += chunk
    return data


def _authenticate(sock: socket.socket, correlation: int, token: bytes) -> bytes:
    """One SaslAuthenticate round trip; the server's token, or :class:`LoginRefused`."""
    body = _request(sock, _SASL_AUTHENTICATE, 0, correlation, struct.pack(">i", len(token)) + token)
    error = struct.unpack(">h", body[:2])[0]
    length = struct.unpack(">h", body[2:4])[0]
    message = body[4 : 4 + length].decode() if length >= 0 else ""
    rest = body[4 + max(length, 0) :]
    if error:
        raise LoginRefused(message or f"Kafka error code {error}")
    size = struct.unpack(">i", rest[:4])[0]
    return rest[4 : 4 + max(size, 0)]


def _scram(sock: socket.socket, hash_name: str, username: str, password: str) -> None:
    def mac(key: bytes, text: bytes) -> bytes:
        return hmac.new(key, text, hash_name).digest()

    name = username.replace("=", "=3D").replace(",", "=2C")
    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = f"n={name},r={nonce}"
    server_first = _authenticate(sock, 2, f"n,,{first_bare}".encode()).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise ConnectionError("Kafka's SCRAM answer does not continue our nonce")
    salted = hashlib.pbkdf2_hmac(
        hash_name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = mac(salted, b"Client Key")
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = mac(hashlib.new(hash_name, client_key).digest(), auth_message)
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    _authenticate(sock, 3, f"{final_bare},p={proof}".encode())


def check_login(bootstrap_servers: str, security: Mapping[str, Any], timeout_s: float = 3.0) -> str | None:
    """Log in to the first broker of ``bootstrap_servers`` that answers, with kafka-python's
    ``security`` arguments. None: accepted; a string: refused, in the broker's words.

    Raises ``OSError`` (``ConnectionError`` and friends) when no broker answers, and ``ValueError``
    for settings without a SASL login."""
    protocol = security.get("security_protocol", "PLAINTEXT")
    mechanism = security.get("sasl_mechanism", "")
    if protocol not in ("SASL_PLAINTEXT", "SASL_SSL") or not mechanism:
        raise ValueError(f"security_protocol {protocol!r} has no SASL login to check")
    username, password = security["sasl_plain_username"], security["sasl_plain_password"]
    error: OSError = ConnectionError(f"no broker in {bootstrap_servers!r}")
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            raw = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s)
        except OSError as exc:
            error = exc
            continue
        with raw:
            tls = ssl.create_default_context() if protocol == "SASL_SSL" else None
            sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
            body = _request(sock, _SASL_HANDSHAKE, 1, 1, _string(mechanism.encode()))
            code = struct.unpack(">h", body[:2])[0]
            if code == _ILLEGAL_SASL_STATE:
                return "this listener takes no SASL login (a PLAINTEXT one: set KAFKA_SECURITY_PROTOCOL)"
            if code:
                return f"this listener does not take SASL mechanism {mechanism} (Kafka error code {code})"
            hash_name = mechanism.removeprefix("SCRAM-").replace("-", "").lower()  # SCRAM-SHA-512: sha512
            try:
                if mechanism == "PLAIN":
                    _authenticate(sock, 2, f"\0{username}\0{password}".encode())
                else:
                    _scram(sock, hash_name, username, password)
            except LoginRefused as refused:
                return str(refused)
            return None
    raise error

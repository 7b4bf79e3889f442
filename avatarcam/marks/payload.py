"""The watermark's payload: product, version and a per-session id (32 bits), protected by a CRC-16 so that a match by
chance is one in 65,536 and a payload read back passes only without bit errors."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from importlib import metadata

import numpy as np

PRODUCT = 0xAC  # "avatarcam"
PAYLOAD_BITS = 32  # product 8, version 8, session 16
CODE_BITS = PAYLOAD_BITS + 16


@dataclass(frozen=True)
class Payload:
    product: int
    version: int  # major·16 + minor of the release that marked the frame
    session: int

    def __str__(self) -> str:
        product = "avatarcam" if self.product == PRODUCT else f"unknown product 0x{self.product:02x}"
        return f"{product} {self.version >> 4}.{self.version & 15}, session {self.session:04x}"


def version_code() -> int:
    """This release as one byte: major·16 + minor (each capped at 15)."""
    try:
        major, minor = (int(part) for part in metadata.version("avatarcam").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return 0
    return min(major, 15) << 4 | min(minor, 15)


def new_session() -> Payload:
    """The payload of a new session: this product and release, and a random session id."""
    return Payload(PRODUCT, version_code(), secrets.randbelow(1 << 16))


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, start 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _bytes(payload: Payload) -> bytes:
    return bytes([payload.product, payload.version]) + payload.session.to_bytes(2, "big")


def encode(payload: Payload) -> np.ndarray:
    """The CODE_BITS code bits (0/1) of `payload`: its 4 bytes then their CRC, most significant bit first."""
    data = _bytes(payload)
    return np.unpackbits(np.frombuffer(data + crc16(data).to_bytes(2, "big"), np.uint8))


def decode(bits: np.ndarray) -> Payload | None:
    """The payload in CODE_BITS code bits, or None when its CRC does not match."""
    raw = np.packbits(bits.astype(np.uint8)).tobytes()
    data, check = raw[:4], int.from_bytes(raw[4:6], "big")
    if crc16(data) != check:
        return None
    return Payload(data[0], data[1], int.from_bytes(data[2:4], "big"))

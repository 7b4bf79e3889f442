"""The channel code of the watermark's bits: a rate-1/3 convolutional code (constraint length 7, the generators
133, 171, 165 octal of 3GPP's), terminated, with soft-decision Viterbi decoding.

Against repeating each bit over cells it gains several dB at the bit error rates the watermark works at: the
same cells carry the payload through weaker, noisier frames.
"""

from __future__ import annotations

import numpy as np

MEMORY = 6  # constraint length 7
GENERATORS = (0o133, 0o171, 0o165)
RATE = len(GENERATORS)
STATES = 1 << MEMORY


def _parity(values: np.ndarray) -> np.ndarray:
    bits = np.unpackbits(values.astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)
    return bits.sum(axis=1).astype(np.int64) & 1


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """For each state and each of its two predecessors: the predecessor, and the branch's output signs (±1)."""
    state = np.arange(STATES)
    predecessors = np.stack([(state << 1) & (STATES - 1) | b for b in (0, 1)], axis=1)  # states × 2
    register = (state >> (MEMORY - 1))[:, None] << MEMORY | predecessors  # the input bit, then the old state
    signs = np.stack([_parity(register.ravel() & g).reshape(STATES, 2) * 2 - 1 for g in GENERATORS], axis=2)
    return predecessors, signs.astype(np.float32)


PREDECESSORS, SIGNS = _tables()


def coded_length(bits: int) -> int:
    return (bits + MEMORY) * RATE


def encode(bits: np.ndarray) -> np.ndarray:
    """The code bits (0/1) of `bits`, the register flushed by MEMORY zeros at the end."""
    state = 0
    out = []
    for bit in [*bits.astype(int), *[0] * MEMORY]:
        register = bit << MEMORY | state
        out += [bin(register & g).count("1") & 1 for g in GENERATORS]
        state = register >> 1
    return np.array(out, np.uint8)


def decode(soft: np.ndarray) -> np.ndarray:
    """The likeliest input bits for `soft` code bit values (positive: 1, negative: 0; their size the
    certainty), from the zero state back to it."""
    steps = len(soft) // RATE
    branches = soft[: steps * RATE].reshape(steps, RATE).astype(np.float32)
    metric = np.full(STATES, -np.inf, np.float32)
    metric[0] = 0.0
    choices = np.empty((steps, STATES), np.uint8)
    for step in range(steps):
        candidates = metric[PREDECESSORS] + SIGNS @ branches[step]  # states × 2
        choices[step] = np.argmax(candidates, axis=1)
        metric = candidates[np.arange(STATES), choices[step]]
    state = 0
    bits = np.empty(steps, np.uint8)
    for step in range(steps - 1, -1, -1):
        bits[step] = state >> (MEMORY - 1)
        state = PREDECESSORS[state, choices[step, state]]
    return bits[: steps - MEMORY]

"""Checking a journal's write-ahead log (``campaign.db-wal``) before SQLite silently drops part of it.

SQLite's WAL recovery (https://www.sqlite.org/fileformat2.html#walformat, "WAL file format" and
"Checksum algorithm") reads frames from the start of the WAL and stops at the first frame whose
salts differ from the header's or whose cumulative checksum does not match; everything from there
on is ignored, and so is the whole WAL when its header checksum is wrong.  Only frames up to the
last *commit frame* (a non-zero "database size after commit") before that point are used.  That is
right for a torn tail (a writer killed mid-transaction, or an OS crash that lost unsynced WAL
pages: ``synchronous=NORMAL`` accepts losing the last transactions then), but a damaged byte in
the middle of the WAL, or in its header, makes SQLite drop *committed* transactions without a
word.  :func:`inspect_wal` tells the two apart:

``ok``
    every frame with the header's salts verifies, up to the end of the file or to the first frame
    of an earlier cycle of the WAL (frames past the last commit are an uncommitted transaction,
    which SQLite rolls back: nothing committed is lost).
``torn``
    the WAL ends inside a frame, or in frames that do not verify and are not followed by any
    frame of the same WAL that does: a torn tail.  SQLite recovers the last complete commit.
``damaged``
    the header does not verify while frames follow, or a frame fails but a later frame with the
    header's salts verifies against its predecessor's stored checksum and completes a commit:
    SQLite would drop committed transactions.  :mod:`cluster.journalschema` refuses the file.

Frames with other salts are leftovers of an earlier cycle of the WAL (SQLite rewrites it from the
start after a checkpoint) and are never read.  The checksum is computed with numpy: per frame the
recurrence ``s0 += x0 + s1; s1 += x1 + s0`` over 32-bit word pairs is the linear map
``s <- M s + (x0, x0 + x1)`` with ``M = [[1, 1], [1, 2]]`` (mod 2**32), summed with precomputed
powers of ``M``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["WalReport", "inspect_wal"]

_MAGIC_LE, _MAGIC_BE = 0x377F0682, 0x377F0683
_HDR, _FHDR = 32, 24
_MASK = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class WalReport:
    """What :func:`inspect_wal` found.

    Attributes
    ----------
    verdict : str
        ``"ok"``, ``"torn"`` or ``"damaged"`` (see the module docstring); ``"ok"`` also for no or an empty WAL.
    frames : int
        Complete frames in the file (any salts).
    valid : int
        Frames SQLite will read (the verifying prefix with the header's salts).
    committed : int
        Frames SQLite will apply (up to the last commit frame of the valid prefix).
    lost_commits : int
        Commit frames past the damage that verify (``damaged`` only): committed transactions SQLite
        would drop.
    detail : str
        One line on where the WAL stops verifying (empty for ``ok``).
    """

    verdict: str
    frames: int = 0
    valid: int = 0
    committed: int = 0
    lost_commits: int = 0
    detail: str = ""


def _powers(pairs: int) -> np.ndarray:
    """``P[k] = M**(pairs-1-k)`` mod 2**32 for k = 0..pairs-1, shape (pairs, 2, 2), uint64."""
    out = np.empty((pairs, 2, 2), dtype=np.uint64)
    p = np.eye(2, dtype=np.uint64)
    m = np.array([[1, 1], [1, 2]], dtype=np.uint64)
    for k in range(pairs - 1, -1, -1):
        out[k] = p
        p = (m @ p) & _MASK
    return out


class _Checksum:
    """SQLite's WAL checksum over whole frames of one page size and byte order."""

    def __init__(self, page_size: int, big_endian: bool):
        self.dtype = np.dtype(">u4" if big_endian else "<u4")
        self.pairs = (8 + page_size) // 8
        self.P = _powers(self.pairs)
        self.ML = (np.array([[1, 1], [1, 2]], dtype=np.uint64) @ self.P[0]) & _MASK  # M**pairs

    def __call__(self, seed: tuple[int, int], data: bytes) -> tuple[int, int]:
        w = np.frombuffer(data, dtype=self.dtype).astype(np.uint64).reshape(-1, 2)
        u = np.stack([w[:, 0], (w[:, 0] + w[:, 1]) & _MASK], axis=1)  # (pairs, 2)
        acc = np.einsum("kij,kj->i", self.P, u) & _MASK
        s = (self.ML @ np.array(seed, dtype=np.uint64) + acc) & _MASK
        return int(s[0]), int(s[1])


def _header_checksum(header: bytes, big_endian: bool) -> tuple[int, int]:
    fmt = ">" if big_endian else "<"
    s0 = s1 = 0
    words = struct.unpack(fmt + "6I", header[:24])
    for i in range(0, 6, 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _frame_fields(data: bytes, off: int) -> tuple[int, tuple[int, int], tuple[int, int]]:
    pgno, commit, a, b, c0, c1 = struct.unpack(">6I", data[off : off + _FHDR])
    return commit, (a, b), (c0, c1)


def _scan(data: bytes, page_size: int, ck: _Checksum, salts: tuple[int, int], seed: tuple[int, int]) -> WalReport:
    size = _FHDR + page_size
    n = (len(data) - _HDR) // size
    valid = committed = 0
    s = seed
    old_cycle = False  # the prefix ends at a frame of an earlier cycle of the WAL: its normal end
    for i in range(n):
        off = _HDR + i * size
        commit, fsalts, stored = _frame_fields(data, off)
        if fsalts != salts or ck(s, data[off : off + 8] + data[off + _FHDR : off + size]) != stored:
            old_cycle = fsalts != salts
            break
        s, valid = stored, i + 1
        committed = valid if commit else committed
    else:
        torn = (len(data) - _HDR) % size != 0
        detail = f"the WAL ends inside frame {n + 1}" if torn else ""
        return WalReport("torn" if torn else "ok", n, valid, committed, 0, detail)
    # frame `valid` (0-based) stops the recovery: does committed data verify after it?
    lost = 0
    for i in range(valid + 1, n):
        off, prev = _HDR + i * size, _HDR + (i - 1) * size
        commit, fsalts, stored = _frame_fields(data, off)
        if (
            fsalts == salts
            and commit
            and ck(_frame_fields(data, prev)[2], data[off : off + 8] + data[off + _FHDR : off + size]) == stored
        ):
            lost += 1
    if lost:
        return WalReport("damaged", n, valid, committed, lost, f"frame {valid + 1} of {n} fails its checksum or salts")
    if old_cycle:
        return WalReport("ok", n, valid, committed)
    return WalReport("torn", n, valid, committed, 0, f"frame {valid + 1} of {n} fails its checksum")


def inspect_wal(path: str | Path) -> WalReport:
    """Classify the WAL file ``path`` (``campaign.db-wal``) as ``ok``, ``torn`` or ``damaged``.

    Reads the file only.  A missing or empty file, or one shorter than its header, is ``ok`` (SQLite
    starts a new WAL).  Raises ``OSError`` if the file exists but cannot be read.
    """
    path = Path(path)
    if not path.exists():
        return WalReport("ok")
    data = path.read_bytes()
    if len(data) < _HDR:
        return WalReport("ok", detail="")
    magic, _version, page_size, _seq, salt1, salt2, c0, c1 = struct.unpack(">8I", data[:_HDR])
    big = magic == _MAGIC_BE
    n_frames = (len(data) - _HDR) // (_FHDR + max(page_size, 1))
    bad_size = page_size < 512 or page_size > 65536 or page_size & (page_size - 1)
    if magic not in (_MAGIC_LE, _MAGIC_BE) or bad_size or _header_checksum(data, big) != (c0, c1):
        if len(data) > _HDR:
            return WalReport("damaged", n_frames, 0, 0, 0, "the WAL header (its first 32 bytes) fails its checksum")
        return WalReport("ok")
    return _scan(data, page_size, _Checksum(page_size, big), (salt1, salt2), (c0, c1))

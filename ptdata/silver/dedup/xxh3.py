"""xxh3_64 (seed 0) of many byte strings at once, bit for bit what `xxhash.xxh3_64_intdigest` gives, in numpy.

The shingles' word hash (ngrams.py, step 2 of the near-dup path) is xxh3_64 of each word's UTF-8 bytes, and
`dedup_signatures` and `eval_index` persist what it produces, so it cannot change; calling xxhash once per word
from Python cost as much as the rest of the near-dup core (2 s of 15.9M words on the benchmark's ~1 KB chat
texts). Words are short, and xxh3's paths up to 128 bytes are a few multiplies of 8-byte reads at fixed offsets
from a word's start and end, so each length class is computed for all of its words in one pass of array
operations; the rare longer word goes to xxhash itself. The constants and the algorithm are xxHash 0.8's
(xxhash.h: XXH3_kSecret, XXH3_len_1to3_64b ... XXH3_len_17to128_64b).
"""

from __future__ import annotations

import numpy as np
import xxhash

# XXH3_kSecret, the default secret; only its first 128 bytes are read by the paths computed here
_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671fcb79e64eccc0e578825ad07dccff7221"
    "b8084674f743248ee03590e6813a264c3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364eac5ac8334d3ebc3c581a0fffa1363eb"
    "170ddd51b7f0da49d316552629d4689e2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"
)
_PRIME64_1 = np.uint64(0x9E3779B185EBCA87)
_PRIME64_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_PRIME64_3 = np.uint64(0x165667B19E3779F9)
_PRIME_MX1 = np.uint64(0x165667919E3779F9)
_PRIME_MX2 = np.uint64(0x9FB21C651E98DF25)
_LOW32 = np.uint64(0xFFFFFFFF)
# the longest word computed here; longer ones (URLs, base64, long identifiers) are hashed by xxhash
MAX_VECTOR_LENGTH = 128
# Words per pass: the temporaries of a pass (a few uint64 arrays of this length) stay in the CPU's cache, which
# measured 3× faster than whole-batch passes bound by memory bandwidth.
_CHUNK = 1 << 15
# bytes past a string's end that an 8-byte read may touch (the 4- and 8-byte reads of its last bytes)
PADDING = 8


def _u(*shifts: int) -> list[np.uint64]:
    return [np.uint64(s) for s in shifts]


_S8, _S16, _S24, _S28, _S29, _S32, _S33, _S35, _S37 = _u(8, 16, 24, 28, 29, 32, 33, 35, 37)


def _secret64(offset: int) -> np.uint64:
    return np.uint64(int.from_bytes(_SECRET[offset : offset + 8], "little"))


def _secret32(offset: int) -> np.uint64:
    return np.uint64(int.from_bytes(_SECRET[offset : offset + 4], "little"))


def _read64(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Little-endian 8-byte reads at arbitrary byte offsets of `data` (uint8, padded by 8 bytes past its last
    read): a view whose element i starts at byte i, so each read is one gather."""
    view = np.ndarray((data.size - 7,), dtype="<u8", buffer=data, strides=(1,))
    return view[offsets]


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _mul128_fold64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The low and high 64 bits of the 128-bit product a·b, xored, from 32-bit halves (numpy has no 128-bit)."""
    a_lo, a_hi, b_lo, b_hi = a & _LOW32, a >> _S32, b & _LOW32, b >> _S32
    ll, lh, hl = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo
    cross = (ll >> _S32) + (lh & _LOW32) + (hl & _LOW32)
    high = a_hi * b_hi + (lh >> _S32) + (hl >> _S32) + (cross >> _S32)
    return (a * b) ^ high


def _avalanche(h: np.ndarray) -> np.ndarray:
    h ^= h >> _S37
    h *= _PRIME_MX1
    h ^= h >> _S32
    return h


def _len_1to3(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    c1 = data[start].astype(np.uint64)
    c2 = data[start + (length >> 1)].astype(np.uint64)
    c3 = data[start + length - 1].astype(np.uint64)
    combined = (c1 << _S16) | (c2 << _S24) | c3 | (length.astype(np.uint64) << _S8)
    h = combined ^ (_secret32(0) ^ _secret32(4))
    h ^= h >> _S33
    h *= _PRIME64_2
    h ^= h >> _S29
    h *= _PRIME64_3
    h ^= h >> _S32
    return h


def _len_4to8(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    first = _read64(data, start) & _LOW32
    last = _read64(data, start + length - 4) & _LOW32
    h = (last + (first << _S32)) ^ (_secret64(8) ^ _secret64(16))
    h ^= _rotl(h, 49) ^ _rotl(h, 24)
    h *= _PRIME_MX2
    h ^= (h >> _S35) + length.astype(np.uint64)
    h *= _PRIME_MX2
    h ^= h >> _S28
    return h


def _len_9to16(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    lo = _read64(data, start) ^ (_secret64(24) ^ _secret64(32))
    hi = _read64(data, start + length - 8) ^ (_secret64(40) ^ _secret64(48))
    return _avalanche(length.astype(np.uint64) + lo.byteswap() + hi + _mul128_fold64(lo, hi))


def _mix16(data: np.ndarray, at: np.ndarray, secret: int) -> np.ndarray:
    return _mul128_fold64(_read64(data, at) ^ _secret64(secret), _read64(data, at + 8) ^ _secret64(secret + 8))


def _len_17to128(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    acc = length.astype(np.uint64) * _PRIME64_1
    acc += _mix16(data, start, 0) + _mix16(data, start + length - 16, 16)
    # the longer a word, the more 16-byte pairs from both ends (xxh3 reads pair i only when len > 32·i)
    for i in range(1, 4):
        longer = np.flatnonzero(length > 32 * i)
        if not longer.size:
            break
        s, n = start[longer], length[longer]
        acc[longer] += _mix16(data, s + 16 * i, 32 * i) + _mix16(data, s + n - 16 * (i + 1), 32 * i + 16)
    return _avalanche(acc)


def xxh3_64_many(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """xxh3_64 of every byte string data[starts[i] : starts[i] + lengths[i]], as uint64 (`data` is uint8).

    Reads go up to PADDING bytes past a string's end; when `data` has fewer after the last string it is copied
    with zeros appended, so a caller that can cheaply leave room (ngrams.word_hashes) saves the copy."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = np.asarray(data, dtype=np.uint8)
    end = int((starts + lengths).max()) if starts.size else 0
    if padded.size < end + PADDING:
        padded = np.concatenate([padded[:end], np.zeros(PADDING, dtype=np.uint8)])
    out = np.empty(starts.size, dtype=np.uint64)
    for lo in range(0, starts.size, _CHUNK):
        start, length = starts[lo : lo + _CHUNK], lengths[lo : lo + _CHUNK]
        part = out[lo : lo + _CHUNK]
        for shortest, longest, kernel in _CLASSES:
            sel = np.flatnonzero((length >= shortest) & (length <= longest))
            if sel.size:
                part[sel] = kernel(padded, start[sel], length[sel])
    rest = np.flatnonzero((lengths == 0) | (lengths > MAX_VECTOR_LENGTH))
    if rest.size:
        out[rest] = [
            xxhash.xxh3_64_intdigest(padded[s : s + n].tobytes())
            for s, n in zip(starts[rest].tolist(), lengths[rest].tolist(), strict=True)
        ]
    return out


_CLASSES = ((1, 3, _len_1to3), (4, 8, _len_4to8), (9, 16, _len_9to16), (17, MAX_VECTOR_LENGTH, _len_17to128))

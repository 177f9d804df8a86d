"""A HyperLogLog sketch of distinct tenants that DuckDB, PostgreSQL and Python compute alike.

Distinct-tenant counts do not add up: a tenant active in 720 hours of a month is one user, not
720. A source that sends its tenants as a set is merged exactly; one that has too many to send
(a LiteLLM cell-hour with thousands of end users) sends a HyperLogLog sketch instead: 4096
registers (precision 12), each the largest "rank" of the tenant hashes that fall in it. Sketches
merge by taking the larger rank of each register, so the union over any window and any cells is
the sketch of the union, and its estimate has a standard error of 1.04 / sqrt(4096), about 1.6%.

Every side hashes a tenant the same way, so a tenant's register is the same whichever path it
came by and exact sets and sketches can be merged: the first 8 bytes of md5(UTF-8 name) as a
big-endian unsigned 64-bit integer. The top 12 bits pick the register; the rank is the number of
leading zeros of the other 52 bits plus one (53 when they are all zero).

The SQL snippets here are the only spelling of that hash and of the register math; the estimator
(`estimate_from`) runs in Python on two numbers a database sums per group.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

P = 12  # precision: 2**P registers
M = 1 << P
REST = 64 - P  # bits left for the rank
MAX_RANK = REST + 1
_REST_MASK = (1 << REST) - 1
_ALPHA = 0.7213 / (1 + 1.079 / M)
STANDARD_ERROR = 1.04 / math.sqrt(M)

# DuckDB: the 64-bit tenant hash (UBIGINT) of a VARCHAR expression, and register / rank of a hash
DUCKDB_HASH = "('0x' || md5({x})[1:16])::UBIGINT"
DUCKDB_REGISTER = "({h} >> 52)::SMALLINT"
DUCKDB_RANK = ("(CASE WHEN ({h} & 4503599627370495::UBIGINT) = 0 THEN 53 "
               "ELSE 53 - length(bin({h} & 4503599627370495::UBIGINT)) END)::TINYINT")
# PostgreSQL: the hash as a bit string (no sign to mind, and the first 1 bit is a `position`), then
# register / rank of that bit string
PG_BITS = "('x' || substr(md5({x}), 1, 16))::bit(64)"
PG_REGISTER = "substring({b} from 1 for 12)::int"
PG_RANK = "coalesce(nullif(position(B'1' in substring({b} from 13)), 0), 53)"
# SQLite has no md5: the source registers these two functions (sqlite_functions) on its connection
SQLITE_REGISTER = "cw_hll_register({x})"
SQLITE_RANK = "cw_hll_rank({x})"


def tenant_hash(name: str) -> int:
    """The 64-bit hash every side computes: md5's first 8 bytes, big-endian, unsigned."""
    return int.from_bytes(hashlib.md5(name.encode("utf-8")).digest()[:8], "big")


def register_rank(h: int) -> tuple[int, int]:
    """(register, rank) of a 64-bit hash."""
    rest = h & _REST_MASK
    return h >> REST, REST - rest.bit_length() + 1


def pack(reg: int, rank: int) -> int:
    """One register as one integer (reg * 64 + rank; a rank is at most 53), as sources send them:
    a million (register, rank) tuples cost several times the memory of a million integers."""
    return reg << 6 | rank


def unpack(packed: int) -> tuple[int, int]:
    return packed >> 6, packed & 63


def registers(names: Iterable[str]) -> dict[int, int]:
    """The sketch of a set of tenants: register -> largest rank (empty registers absent)."""
    out: dict[int, int] = {}
    for name in names:
        reg, rank = register_rank(tenant_hash(name))
        if rank > out.get(reg, 0):
            out[reg] = rank
    return out


def merge(*sketches: Mapping[int, int]) -> dict[int, int]:
    """The sketch of the union: the larger rank of each register."""
    out: dict[int, int] = {}
    for sketch in sketches:
        for reg, rank in sketch.items():
            if rank > out.get(reg, 0):
                out[reg] = rank
    return out


def estimate_from(filled: int, inverse_sum: float) -> float:
    """The HyperLogLog estimate from the number of non-empty registers and the sum of 2**-rank
    over them (what a database sums per group), with the linear-counting correction for small
    counts (below 2.5 x 4096 the empty registers say more than the ranks). A 64-bit hash needs no
    large-range correction at any tenant count Costwarden will see."""
    if filled <= 0:
        return 0.0
    empty = M - filled
    raw = _ALPHA * M * M / (inverse_sum + empty)
    if raw <= 2.5 * M and empty > 0:
        return M * math.log(M / empty)
    return raw


def estimate(sketch: Mapping[int, int]) -> float:
    """The estimated number of distinct tenants of a sketch."""
    return estimate_from(len(sketch), sum(2.0 ** -r for r in sketch.values()))


def sqlite_functions(dbapi_con: object) -> None:
    """Register the register / rank functions on a sqlite3 connection (SQLite has no md5)."""
    def reg(name: str | None) -> int | None:
        return None if name is None else register_rank(tenant_hash(str(name)))[0]

    def rank(name: str | None) -> int | None:
        return None if name is None else register_rank(tenant_hash(str(name)))[1]

    dbapi_con.create_function("cw_hll_register", 1, reg, deterministic=True)  # type: ignore[attr-defined]
    dbapi_con.create_function("cw_hll_rank", 1, rank, deterministic=True)  # type: ignore[attr-defined]

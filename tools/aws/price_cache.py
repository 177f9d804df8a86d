"""A JSON file of on-demand prices read from the AWS Price List API, each with the time it was fetched.

Why a file and not memory: the daemon starts a new PriceBook every sweep and a CLI run lives for
seconds, so only a file in `state_dir` lets a price fetched once serve every sweep for the TTL
(7 days by default) instead of one GetProducts request per type per sweep. An entry whose price
is null records that the API had no such product (a type not sold in that region): that answer
is cached too, so a missing type is not asked for again every sweep.

The file is our own, so a damaged one is a warning and a fresh start, never the end of a sweep.
Writes go to a temporary file renamed over the old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

FORMAT = "costwarden-aws-price-list/1"


@dataclass(frozen=True)
class CachedPrice:
    """One (service, region, type) answer of the API: USD per hour, or None when it sold no such product."""

    usd_per_hour: Decimal | None
    fetched_at: datetime
    sku: str = ""

    def fresh(self, now: datetime, ttl: timedelta) -> bool:
        return now - self.fetched_at < ttl

    def to_json(self) -> dict[str, Any]:
        return {"usd_per_hour": None if self.usd_per_hour is None else format(self.usd_per_hour, "f"),
                "fetched_at": self.fetched_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "sku": self.sku}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CachedPrice:
        raw = doc.get("usd_per_hour")
        price = None if raw is None else Decimal(str(raw))
        if price is not None and (not price.is_finite() or price <= 0):
            raise ValueError(f"not a positive price: {raw!r}")
        fetched = datetime.strptime(str(doc["fetched_at"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        return cls(price, fetched, str(doc.get("sku") or ""))


def cache_key(service: str, region: str, instance_type: str) -> str:
    return f"{service}/{region}/{instance_type}"


def split_key(key: str) -> tuple[str, str, str]:
    service, region, instance_type = key.split("/", 2)
    return service, region, instance_type


class PriceCache:
    """The cache file, loaded on first use; `warnings` says when it was unreadable and ignored."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.warnings: list[str] = []
        self._entries: dict[str, CachedPrice] | None = None
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedPrice | None:
        return self._load().get(key)

    def keys(self) -> list[str]:
        return sorted(self._load())

    def put_many(self, entries: dict[str, CachedPrice]) -> None:
        """Record answers and rewrite the file (atomically); a write failure is a warning, the
        prices stay usable in memory for the rest of this run."""
        with self._lock:
            data = self._load()
            data.update(entries)
            doc = {"format": FORMAT, "source": "AWS Price List API (pricing:GetProducts), on-demand",
                   "entries": {k: v.to_json() for k, v in sorted(data.items())}}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".price-list-", suffix=".json", dir=self.path.parent)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, indent=1)
                    fh.write("\n")
                os.replace(tmp, self.path)
            except OSError as exc:
                self.warnings.append(f"pricing: cannot write the price cache {self.path} ({exc.strerror or exc}); "
                                     f"prices fetched now are kept for this run only")

    def _load(self) -> dict[str, CachedPrice]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, CachedPrice] = {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            for key, value in (doc.get("entries") or {}).items():
                split_key(key)
                entries[key] = CachedPrice.from_json(value)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
            entries = {}
            self.warnings.append(f"pricing: ignoring the unreadable price cache {self.path} "
                                 f"({exc.__class__.__name__}: {str(exc)[:120]}); it is rebuilt as prices are fetched")
        self._entries = entries
        return entries

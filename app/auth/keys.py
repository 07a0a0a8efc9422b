"""API keys: made once, shown once, stored only as their SHA-256.

A key is ``oak_<id>_<secret>``: ``id`` (8 hex) names it in listings and revocations, ``secret`` is
32 random bytes. Keys are random, not passwords, so a fast hash is enough (no dictionary to
guess from) and lets every request be checked with one Redis read. Layout (``P`` is
``jobs_key_prefix``)::

    P apikey:{sha256}   hash: id, tenant, role, created_at
    P apikeys           hash: id -> sha256 (list and revoke by id)
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import redis
import redis.asyncio as aioredis

from workers.jobstore.keys import DEFAULT_TENANT, now_iso

Role = Literal["user", "admin"]
ROLES: tuple[Role, ...] = ("user", "admin")
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
#: The tenant of every caller when the service runs open (no keys).
OPEN_TENANT = DEFAULT_TENANT  # also the tenant of a job record that names none
_KEY = re.compile(r"^oak_([0-9a-f]{8})_[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant whose jobs they see, and their role."""

    tenant: str
    role: Role
    key_id: str | None = None  # None: the service runs open

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def looks_like_key(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def new_key() -> tuple[str, str]:
    """(key id, the whole key)."""
    key_id = secrets.token_hex(4)
    return key_id, f"oak_{key_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class KeyLayout:
    prefix: str

    def key(self, sha: str) -> str:
        return f"{self.prefix}apikey:{sha}"

    @property
    def index(self) -> str:
        return f"{self.prefix}apikeys"


class KeyStore:
    """Sync side, for the ``keys`` command."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.layout = KeyLayout(prefix)

    def create(self, tenant: str, role: Role) -> tuple[str, str]:
        if not re.fullmatch(TENANT_PATTERN, tenant):
            raise ValueError(f"tenant {tenant!r}: lower-case letters, digits, _ . - "
                             "(up to 63, starting with a letter or digit)")
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        key_id, key = new_key()
        sha = digest(key)
        pipe = self.r.pipeline()
        pipe.hset(self.layout.key(sha), mapping={"id": key_id, "tenant": tenant, "role": role,
                                                  "created_at": now_iso()})
        pipe.hset(self.layout.index, key_id, sha)
        pipe.execute()
        return key_id, key

    def revoke(self, key_id: str) -> bool:
        sha = self.r.hget(self.layout.index, key_id)
        if sha is None:
            return False
        sha = sha.decode() if isinstance(sha, bytes) else sha
        pipe = self.r.pipeline()
        pipe.delete(self.layout.key(sha))
        pipe.hdel(self.layout.index, key_id)
        pipe.execute()
        return True

    def list(self) -> list[dict[str, Any]]:
        out = []
        for _key_id, sha in sorted(self.r.hgetall(self.layout.index).items()):
            sha = sha.decode() if isinstance(sha, bytes) else sha
            raw = self.r.hgetall(self.layout.key(sha))
            rec = {(k.decode() if isinstance(k, bytes) else k):
                   (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
            if rec:
                out.append(rec)
        return out


class AsyncKeyStore:
    """API side: one HGETALL per request."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.r = client
        self.layout = KeyLayout(prefix)

    async def principal(self, key: str) -> Principal | None:
        if not looks_like_key(key):
            return None
        rec = await self.r.hgetall(self.layout.key(digest(key)))
        if not rec or rec.get("role") not in ROLES:
            return None
        return Principal(tenant=rec["tenant"], role=rec["role"], key_id=rec["id"])

    async def count(self) -> int:
        return int(await self.r.hlen(self.layout.index))

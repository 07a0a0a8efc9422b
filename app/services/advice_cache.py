"""The advice cache: an in-process LRU in front of Redis. Key = hash of the validated request's
JSON + rule/recipe/core versions.

Advice is a pure function of (request, versions), and the versions are in the key, so an entry
can never go stale: the process-local LRU answers a repeated request without a network round
trip, and Redis shares answers between API processes (a miss here, a hit there). Every Redis call
is bounded by ``advice_cache_timeout_s`` and any error opens a short circuit
(``advice_cache_retry_after_s``) during which Redis is skipped — the API keeps answering at full
speed with Redis down instead of paying a timeout per request.

Values are the JSON bodies as bytes, as they are sent: stored, read and answered without a decode
or an encode (each costs a UTF-8 pass over ~10 KB, with η and θ in it). The cache Redis client is
made with ``decode_responses=False`` for that.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from optim_core import __version__
from optim_core.advice.models import AdviceRequest
from optim_core.advice.rules import RULES_VERSION

log = logging.getLogger("app.advice_cache")
PREFIX = "advice:v2:"
_VERSIONS = f"rules={RULES_VERSION};optim_core={__version__};".encode()


def cache_key(req: AdviceRequest) -> str:
    # A validated request dumps with every default filled and fields in schema order, so two
    # requests that mean the same thing give the same bytes (and one key).
    digest = hashlib.blake2b(_VERSIONS + req.model_dump_json().encode(), digest_size=20)
    return PREFIX + digest.hexdigest()


class ReadPolicy:
    """Whether a miss of the process-local level waits for Redis.

    A Redis read costs the API about half of what computing the advice costs (one MGET round
    trip against the engine plus serialisation, measured by ``bench/advice_bench.py``), and
    under load a request that waits on a read waits a loop iteration per hop. It pays only when
    Redis holds the answer often enough: when other processes serve the same traffic. The
    policy keeps an exponentially weighted hit rate of the reads made; below ``floor``, misses
    are computed here and every ``probe_every``-th also asks Redis *in the background* (a
    probe: its answer updates the rate and the local level, and no response waits for it), so
    that reads resume when Redis starts answering. A batch of ``probe_every`` or more keys
    always reads: one round trip then serves many."""

    def __init__(self, *, floor: float, probe_every: int, weight: float = 0.05) -> None:
        self.floor = floor
        self.probe_every = probe_every
        self.weight = weight
        self.hit_rate = 1.0  # read until the traffic says otherwise
        self._skipped = 0

    def decide(self, n_keys: int) -> Literal["read", "probe", "skip"]:
        if self.hit_rate >= self.floor or n_keys >= self.probe_every:
            return "read"
        self._skipped += 1
        if self._skipped >= self.probe_every:
            self._skipped = 0
            return "probe"
        return "skip"

    def observe(self, found: list[bytes | None]) -> None:
        for value in found:
            self.hit_rate += self.weight * ((value is not None) - self.hit_rate)


class AdviceCache:
    def __init__(self, client: aioredis.Redis, *, ttl_s: int, timeout_s: float,
                 retry_after_s: float, background_timeout_s: float | None = None,
                 local_items: int = 4096,
                 write_window_s: float = 0.0, write_batch: int = 256,
                 read_policy: ReadPolicy | None = None) -> None:
        self._client = client
        self._ttl = ttl_s
        self._timeout = timeout_s
        # Writes and probe reads run behind the responses: nobody waits on them, so under load
        # (a pipeline of up to write_batch 10 KB SETs, interleaved with the requests that fill
        # the event loop) they may take longer than a read a request waits on; only one slower
        # than this opens the circuit.
        self._background_timeout = background_timeout_s or timeout_s
        self._retry_after = retry_after_s
        self._down_until = 0.0
        self._local: OrderedDict[str, bytes] = OrderedDict()
        self._local_items = local_items
        self._pending: dict[str, bytes] = {}
        self._write_window = write_window_s
        self._write_batch = write_batch
        self._batch_full = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        # reads of the same loop iteration share one MGET (see get_many)
        self._reads: dict[str, asyncio.Future[bytes | None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.read_policy = read_policy or ReadPolicy(floor=0.0, probe_every=1)
        self._probes: set[asyncio.Task[list[bytes | None]]] = set()  # held: tasks are weak refs

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _trip(self, exc: BaseException, op: str) -> None:
        self._down_until = time.monotonic() + self._retry_after
        # the type too: a timeout's str() is empty
        log.warning("advice cache unavailable (%s: %s: %s); skipping it for %.1fs",
                    op, type(exc).__name__, exc, self._retry_after)

    def _remember(self, key: str, value: bytes) -> None:
        self._local[key] = value
        self._local.move_to_end(key)
        if len(self._local) > self._local_items:
            self._local.popitem(last=False)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The stored JSON bodies of ``keys`` (None where absent), bytes as they are sent."""
        out: list[bytes | None] = []
        missing: list[int] = []
        for i, key in enumerate(keys):
            hit = self._local.get(key)
            if hit is not None:
                self._local.move_to_end(key)
            else:
                missing.append(i)
            out.append(hit)
        if not missing or not self.available:
            return out
        decision = self.read_policy.decide(len(missing))
        if decision != "read":
            if decision == "probe":
                self._probes.add(task := asyncio.get_running_loop().create_task(
                    self._read_keys([keys[i] for i in missing], self._background_timeout)))
                task.add_done_callback(self._probes.discard)
            return out
        # Misses of concurrent requests (every request that reached this point in the same
        # loop iteration) go out as one MGET: under load a miss costs a share of one round
        # trip's Python instead of a whole command each. The reader bounds the call by the
        # timeout and resolves every waiter (None on an error), so no waiter hangs.
        loop = asyncio.get_running_loop()
        waits = []
        for i in missing:
            fut = self._reads.get(keys[i])
            if fut is None:
                fut = self._reads[keys[i]] = loop.create_future()
            waits.append(fut)
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read())
        for i, value in zip(missing, await asyncio.gather(*waits), strict=True):
            if value is not None:
                out[i] = value
        return out

    async def _read(self) -> None:
        await asyncio.sleep(0)  # let this iteration's other misses join the MGET
        while self._reads:
            reads, self._reads = self._reads, {}
            found = await self._read_keys(list(reads))
            for fut, value in zip(reads.values(), found, strict=True):
                if not fut.done():
                    fut.set_result(value)

    async def _read_keys(self, keys: list[str], timeout_s: float | None = None
                         ) -> list[bytes | None]:
        """One MGET, bounded by ``timeout_s`` (default: the bound of a read a request waits
        on); what it finds is remembered locally and counted by the read policy. None for every
        key when Redis is skipped or fails (which opens the circuit)."""
        if not self.available:
            return [None] * len(keys)
        try:
            async with asyncio.timeout(timeout_s or self._timeout):
                raw = await self._client.mget(keys)
        except (RedisError, OSError, TimeoutError) as exc:
            self._trip(exc, "read")
            return [None] * len(keys)
        self.read_policy.observe(raw)
        for key, value in zip(keys, raw, strict=True):
            if value is not None:
                self._remember(key, value)
        return raw

    async def set_many(self, items: dict[str, bytes]) -> None:
        """Remember locally now; write to Redis behind the response: the writes of every miss
        in the write window go out as one pipeline, so a miss does not wait for Redis and a
        burst of misses costs one round trip."""
        for key, value in items.items():
            self._remember(key, value)
        if not items or not self.available:
            return
        self._pending.update(items)
        if len(self._pending) >= self._write_batch:
            self._batch_full.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await self._gather_writes()
        while self._pending:
            items, self._pending = self._pending, {}
            try:
                async with asyncio.timeout(self._background_timeout):
                    pipe = self._client.pipeline(transaction=False)
                    for key, value in items.items():
                        pipe.set(key, value, ex=self._ttl)
                    await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                self._trip(exc, "write")
                self._pending.clear()
                return

    async def _gather_writes(self) -> None:
        """Let other misses join the pipeline: those of this loop iteration, and with a write
        window those of the next ``write_window_s``, or until ``write_batch`` are waiting."""
        if self._write_window <= 0:
            await asyncio.sleep(0)
            return
        try:
            async with asyncio.timeout(self._write_window):
                await self._batch_full.wait()
        except TimeoutError:
            pass
        self._batch_full.clear()

    async def drain(self) -> None:
        """Write what is waiting now, without its window, and wait for it (shutdown, tests)."""
        self._batch_full.set()
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

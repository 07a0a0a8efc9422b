"""Every FastAPI dependency, as ``Annotated`` aliases. The getters are ``async`` so that FastAPI
calls them on the event loop: a sync dependency costs a threadpool hop per request. What they hand out comes from
``app.state``, set by ``create_app`` (settings passed in, clients made in its lifespan).

``CallerDep`` is the caller: in ``keys`` mode a valid ``Authorization: Bearer <key>`` (401
otherwise), charged one token of its key's bucket (429 when empty); when the service runs open,
everyone is the ``local`` tenant with the admin role. ``AdminDep`` also needs the admin role (403).
"""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from app.auth.keys import OPEN_TENANT, AsyncKeyStore, Principal
from app.auth.limits import Limiter
from app.core.config import Settings
from app.core.problems import ProblemError
from app.services.advice_cache import AdviceCache
from app.services.jobs import JobService

#: The security scheme of every route that asks for the caller. ``get_caller`` reads the header
#: itself rather than through ``fastapi.security.HTTPBearer``, a dependency node of its own on
#: every request; ``app.core.openapi`` declares the scheme on the routes ``needs_caller`` finds.
BEARER_SCHEME = {"HTTPBearer": {
    "type": "http", "scheme": "bearer",
    "description": "An API key: `Authorization: Bearer oak_…`. Not needed when the service "
                   "runs open (scripts/up on 127.0.0.1)."}}


def bearer_token(request: Request) -> str | None:
    """The credentials of an ``Authorization: Bearer <credentials>`` header (the scheme's case
    ignored), or None for no header or another scheme: what ``HTTPBearer(auto_error=False)``
    hands out."""
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_redis(request: Request) -> aioredis.Redis:
    """The broker/job-store Redis (decoded responses)."""
    return request.app.state.redis


async def get_job_service(request: Request) -> JobService:
    return request.app.state.jobs


async def get_advice_cache(request: Request) -> AdviceCache:
    """The app's advice cache, created with the Redis clients in the lifespan."""
    return request.app.state.advice_cache


async def get_limiter(request: Request) -> Limiter:
    return request.app.state.limiter


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
JobServiceDep = Annotated[JobService, Depends(get_job_service)]
CacheDep = Annotated[AdviceCache, Depends(get_advice_cache)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]


_OPEN_CALLER = Principal(tenant=OPEN_TENANT, role="admin")  # frozen: one for every request


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "Unauthorized", detail, type_="unauthorized",
                        headers={"WWW-Authenticate": 'Bearer realm="optim-advisor"'})


async def _charge(limiter: Limiter, who: str) -> None:
    state = await limiter.take(who)
    if not state.allowed:
        raise ProblemError(429, "Too many requests",
                           f"rate limit: {limiter.burst} requests, refilled at {limiter.rate:g} "
                           f"per second; retry in {state.retry_after_s} s",
                           type_="rate-limited", headers=state.headers(),
                           limit=limiter.burst, rate_per_s=limiter.rate)


async def get_caller(request: Request) -> Principal:
    # Settings and the limiter are read off app.state here rather than declared as
    # sub-dependencies: every route asks for the caller, and FastAPI's cost per request grows
    # with the number of dependency nodes (about a tenth of a cached advice answer each).
    state = request.app.state
    settings: Settings = state.settings
    limiter: Limiter = state.limiter
    server = request.scope.get("server")
    if settings.open_on(server[0] if server else None):
        if settings.limits_when_open:
            await _charge(limiter, f"addr:{request.client.host if request.client else '?'}")
        return _OPEN_CALLER
    credentials = bearer_token(request)
    if credentials is None:
        raise _unauthorized("an API key is required: send Authorization: Bearer <key> "
                            "(create one with `optim-advisor keys create --tenant NAME`)")
    keys: AsyncKeyStore = state.api_keys
    principal = await keys.principal(credentials)
    if principal is None:
        raise _unauthorized("the API key is not valid (unknown, revoked or malformed)")
    await _charge(limiter, f"key:{principal.key_id}")
    return principal


CallerDep = Annotated[Principal, Depends(get_caller)]


async def require_admin(caller: CallerDep) -> Principal:
    if not caller.is_admin:
        raise ProblemError(403, "Forbidden", "this route needs an API key with the admin role",
                           type_="forbidden")
    return caller


AdminDep = Annotated[Principal, Depends(require_admin)]


def needs_caller(dependant: Dependant) -> bool:
    """Whether a route's dependencies ask for the caller (then it takes an API key)."""
    stack = [dependant]
    while stack:
        d = stack.pop()
        if d.call is get_caller:
            return True
        stack.extend(d.dependencies)
    return False

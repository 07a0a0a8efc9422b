"""``python -m app.keys`` (and ``optim-advisor keys``): create, list and revoke API keys.

    python -m app.keys create --tenant ml-platform --role user   # prints the key, once
    python -m app.keys list
    python -m app.keys revoke <key-id>

Keys go to the job-store Redis (``OPTIM_REDIS_URL``, prefix ``OPTIM_JOBS_KEY_PREFIX``), stored as
their SHA-256 only: a lost key cannot be shown again, only revoked and replaced.
"""

from __future__ import annotations

import argparse
import json
import sys

import redis

from app.auth.keys import ROLES, KeyStore


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optim-advisor keys", description=__doc__.split("\n")[0])
    p.add_argument("--redis-url", help="default: OPTIM_REDIS_URL")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="make a key for a tenant; prints it once")
    c.add_argument("--tenant", required=True)
    c.add_argument("--role", choices=ROLES, default="user")
    c.add_argument("--json", action="store_true", help="print {id, key, tenant, role}")
    sub.add_parser("list", help="key ids, tenants and roles (never the keys)")
    r = sub.add_parser("revoke", help="revoke a key by its id")
    r.add_argument("key_id")
    return p


def main(argv: list[str] | None = None) -> int:
    from app.core.config import Settings

    args = _parser().parse_args(argv)
    settings = Settings()
    client = redis.Redis.from_url(args.redis_url or settings.redis_url, decode_responses=True,
                                  socket_timeout=5, socket_connect_timeout=5)
    store = KeyStore(client, settings.jobs_key_prefix)
    try:
        if args.command == "create":
            try:
                key_id, key = store.create(args.tenant, args.role)
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if args.json:
                print(json.dumps({"id": key_id, "key": key, "tenant": args.tenant,
                                  "role": args.role}))
            else:
                print(key)
                print(f"key id {key_id}, tenant {args.tenant}, role {args.role}; it is shown "
                      "only now: store it as a secret", file=sys.stderr)
            return 0
        if args.command == "list":
            for rec in store.list():
                print(f"{rec['id']}  tenant={rec['tenant']}  role={rec['role']}  "
                      f"created={rec.get('created_at', '?')}")
            return 0
        if store.revoke(args.key_id):
            print(f"revoked {args.key_id}", file=sys.stderr)
            return 0
        print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"error: Redis is not answering: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()


if __name__ == "__main__":
    raise SystemExit(main())

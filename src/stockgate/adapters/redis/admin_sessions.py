"""Admin sessions in Redis: one hash per session, under the key prefix, expiring when idle.

The key holds a digest of the session id, not the id itself: someone who can read Redis
(a backup, a replica, MONITOR) learns nothing they could put in a cookie.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis
from redis.exceptions import RedisError

from stockgate.domain.errors import StoreUnavailable
from stockgate.services.ports import AdminSession


class RedisAdminSessions:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, session_id: str) -> str:
        digest = hashlib.sha256(session_id.encode()).hexdigest()
        return f"{self._prefix}:admin:session:{digest}"

    async def add(self, session: AdminSession, ttl_seconds: int) -> None:
        key = self._key(session.id)
        fields = {
            "user_id": session.user_id,
            "username": session.username,
            "csrf_token": session.csrf_token,
            "created_at": repr(session.created_at),
            "last_seen": repr(session.last_seen),
        }
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis-py's stub is narrow
                pipe.expire(key, ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc

    async def get(self, session_id: str) -> AdminSession | None:
        try:
            raw = await self._redis.hgetall(self._key(session_id))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        try:
            return AdminSession(
                id=session_id,
                user_id=int(fields["user_id"]),
                username=fields["username"],
                csrf_token=fields["csrf_token"],
                created_at=float(fields["created_at"]),
                last_seen=float(fields["last_seen"]),
            )
        except (KeyError, ValueError):
            return None  # a damaged session is no session: log in again

    async def touch(self, session_id: str, last_seen: float, ttl_seconds: int) -> None:
        key = self._key(session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "last_seen", repr(last_seen))
                pipe.expire(key, ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc

    async def remove(self, session_id: str) -> None:
        try:
            await self._redis.delete(self._key(session_id))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("redis") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

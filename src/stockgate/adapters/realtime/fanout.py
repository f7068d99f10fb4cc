"""The Socket.IO Redis manager: how every process reaches every API node's watchers.

API nodes get a read-write manager (it listens on the channel and emits to its own clients);
workers and CLI commands get a write-only one (publish only). The channel is under the Redis
key prefix, so stacks (and parallel tests) sharing a Redis never see each other's events.
"""

from __future__ import annotations

import asyncio
import contextlib

import socketio


def channel_of(prefix: str) -> str:
    return f"{prefix}:socketio"


def redis_manager(redis_url: str, prefix: str, *, write_only: bool) -> socketio.AsyncRedisManager:
    """Builds the manager; it connects on first use (nothing at construction)."""
    return socketio.AsyncRedisManager(
        redis_url,
        channel=channel_of(prefix),
        write_only=write_only,
        redis_options={"socket_connect_timeout": 2, "socket_timeout": 5},
    )


async def close_manager(manager: socketio.AsyncRedisManager) -> None:
    """Stop listening (API nodes) and close the manager's Redis connections."""
    listener = getattr(manager, "thread", None)
    if isinstance(listener, asyncio.Task):
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
    redis = getattr(manager, "redis", None)
    if redis is not None:
        await redis.aclose()

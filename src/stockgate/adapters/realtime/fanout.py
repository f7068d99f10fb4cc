"""The Socket.IO Redis manager: how every process reaches every API node's watchers.

API nodes get a read-write manager (it listens on the channel and emits to its own clients);
workers and CLI commands get a write-only one (publish only). The channel is under the Redis
key prefix, so stacks (and parallel tests) sharing a Redis never see each other's events.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio
import structlog
from engineio import packet as eio_packet
from socketio import packet as sio_packet

log = structlog.get_logger(__name__)


class _SequentialRoomSend(socketio.AsyncManager):  # type: ignore[misc]  # untyped base
    """Delivers a room event to this node's clients one after the other.

    python-socketio starts one asyncio task per recipient and waits for them all; for a
    `stock` event to 1,000 watchers that is 1,000 tasks per flush, in the event loop that also
    serves reservations. Handing the packet (encoded once) to each client's send queue in a
    plain loop does the same work without the tasks: a send only queues (each connection has
    its own writer), so nothing waits on a slow client here.
    """

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if callback is not None or namespace not in self.rooms:
            await super().emit(event, data, namespace, room, skip_sid, callback, **kwargs)
            return
        payload = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *payload]
        ).encode()
        packets = [
            eio_packet.Packet(eio_packet.MESSAGE, part)
            for part in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            for one in packets:
                try:
                    await self.server._send_eio_packet(eio_sid, one)
                except Exception:  # one broken connection must not starve the others
                    log.debug("socketio.send_failed", sid=sid)


class _RedisManager(socketio.AsyncRedisManager, _SequentialRoomSend):  # type: ignore[misc]
    """The Redis manager, delivering locally with `_SequentialRoomSend` (see its MRO)."""


def channel_of(prefix: str) -> str:
    return f"{prefix}:socketio"


def redis_manager(redis_url: str, prefix: str, *, write_only: bool) -> socketio.AsyncRedisManager:
    """Builds the manager; it connects on first use (nothing at construction)."""
    return _RedisManager(
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

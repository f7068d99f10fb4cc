"""Reservation ids are UUIDv7, and stay unique across the processes granian forks."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from stockgate.domain.reservation import Reservation, ReservationLine, ReserveRequest

REQUEST = ReserveRequest(uuid.uuid4(), (ReservationLine(1, 1),))


def new_ids(count: int) -> list[uuid.UUID]:
    now = datetime.now(UTC)
    return [Reservation.new(REQUEST, now=now, hold_seconds=60).id for _ in range(count)]


def test_ids_are_version_7_and_ordered_in_one_process() -> None:
    ids = new_ids(1_000)
    assert {i.version for i in ids} == {7}
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_forked_workers_never_make_the_same_id() -> None:
    # granian forks its workers after the app module (and the id generator) is imported; a
    # generator state copied into each child would repeat ids within the same millisecond.
    new_ids(1)
    children = []
    for _ in range(3):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write its ids, then leave without running pytest any further
            try:
                os.close(read_end)
                with os.fdopen(write_end, "wb") as out:
                    out.write(b"".join(i.bytes for i in new_ids(20_000)))
            finally:
                os._exit(0)  # a child that failed wrote too little: the parent's check fails
        os.close(write_end)
        children.append((pid, read_end))
    ids = {i.bytes for i in new_ids(20_000)}
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as got:
            data = got.read()
        os.waitpid(pid, 0)
        assert len(data) == 20_000 * 16
        ids |= {data[k : k + 16] for k in range(0, len(data), 16)}
    assert len(ids) == 4 * 20_000

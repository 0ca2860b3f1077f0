"""Published dialplan versions shared through the database by every node that uses it.

The database holds each published version's files and each dialplan's state (live, canary and its
share, history) with a revision that grows with every change. A node keeps a copy in its own
version store (the folder call workers read at call start, so no call waits on the database and a
database outage leaves the node serving what it last saw): its supervisor pulls every
``SYNC_INTERVAL_S`` and copies a changed state, with any version it lacks, into the folder. A
publish, promote or rollback (`voicebot dialplan ...`) pulls, changes the local copy with the
store's own checks, and pushes the result in one transaction that refuses to overwrite a change
someone else pushed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.db.models import DialplanState, DialplanVersion
from voicebot.dialplan.versions import StoreState, VersionError, VersionStore
from voicebot.logs import get_logger

log = get_logger(__name__)
SYNC_INTERVAL_S = 2.0  # a promote reaches every node within this plus one database round trip
T = TypeVar("T")


async def pull(session: AsyncSession, store: VersionStore) -> list[str]:
    """Copy every changed shared state (and the versions it names) into ``store``; returns the plan
    ids that changed. The state is written last, so a call never sees a version not yet on disk."""
    changed = []
    for row in (await session.scalars(select(DialplanState))).all():
        state = StoreState(row.live, row.canary, row.canary_percent, list(row.history), row.revision)
        if store.state(row.plan_id) == state:  # the whole state: a copy from another database
            continue  # (a reset one, a test's) may carry the same revision number
        for ref in state.refs():
            if not store.has_version(row.plan_id, ref):
                version = await session.scalar(
                    select(DialplanVersion).where(
                        DialplanVersion.plan_id == row.plan_id, DialplanVersion.ref == ref
                    )
                )
                if version is None:
                    raise VersionError(f"{row.plan_id} {ref} is named by the shared state but not stored")
                store.write_version(row.plan_id, ref, {str(k): str(v) for k, v in version.files.items()})
        store.save_state(row.plan_id, state)
        changed.append(row.plan_id)
    return changed


async def push(session: AsyncSession, store: VersionStore, plan_id: str, base_revision: int) -> int:
    """Write the local state of ``plan_id`` (and its versions the database lacks) as the next
    revision; VersionError when the shared state moved past ``base_revision`` meanwhile."""
    state = store.state(plan_id)
    row = await session.get(DialplanState, plan_id, with_for_update=True)
    current = row.revision if row is not None else 0
    if current != base_revision:
        raise VersionError(
            f"{plan_id} was changed by someone else meanwhile (revision {current}, not {base_revision}): "
            "nothing was changed; look at `voicebot dialplan status` and run it again"
        )
    stored = set(await session.scalars(select(DialplanVersion.ref).where(DialplanVersion.plan_id == plan_id)))
    for ref in state.refs():
        if ref not in stored:
            session.add(DialplanVersion(plan_id=plan_id, ref=ref, files=store.version_files(plan_id, ref)))
    if row is None:
        row = DialplanState(plan_id=plan_id)
        session.add(row)
    row.live, row.canary, row.canary_percent = state.live, state.canary, state.canary_percent
    row.history, row.revision = list(state.history), current + 1
    await session.flush()
    state.revision = current + 1
    store.save_state(plan_id, state)
    return state.revision


def change(
    url: str, store: VersionStore, op: Callable[[VersionStore], T], plan_id_of: Callable[[T], str]
) -> T:
    """Pull, apply ``op`` to the local copy, push: what `voicebot dialplan publish|promote|rollback`
    does when the versions are shared. A refused push leaves the database as it was."""

    async def go() -> T:
        engine = create_engine(DatabaseParams(url=url, pool_size=1))
        try:
            async with sessionmaker(engine)() as session, session.begin():
                await pull(session, store)
            result = op(store)
            plan_id = plan_id_of(result)
            base = store.state(plan_id).revision  # what the change was made on (kept by op)
            async with sessionmaker(engine)() as session, session.begin():
                await push(session, store, plan_id, base)
            return result
        finally:
            await engine.dispose()

    return asyncio.run(go())


def pull_now(url: str, store: VersionStore) -> list[str]:
    async def go() -> list[str]:
        engine = create_engine(DatabaseParams(url=url, pool_size=1))
        try:
            async with sessionmaker(engine)() as session:
                return await pull(session, store)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def sync(
    url: str, store: VersionStore, stopping: asyncio.Event, interval_s: float = SYNC_INTERVAL_S
) -> None:
    """The node's copy follows the database (one retry loop: a database that is away leaves the
    node serving its last copy, and says so once until it is back)."""
    engine = create_engine(DatabaseParams(url=url, pool_size=1))
    failing = False
    try:
        while not stopping.is_set():
            try:
                async with sessionmaker(engine)() as session:
                    for plan_id in await pull(session, store):
                        st = store.state(plan_id)
                        log.info(
                            "dialplan.shared_state",
                            dialplan=plan_id,
                            live=st.live,
                            canary=st.canary,
                            canary_percent=st.canary_percent,
                            revision=st.revision,
                        )
                if failing:
                    log.info("dialplan.sync_restored")
                failing = False
            except Exception as exc:  # the database is away, or a version is broken: keep serving
                if not failing:
                    log.warning("dialplan.sync_failed", error=f"{type(exc).__name__}: {str(exc)[:300]}")
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_s)
    finally:
        await engine.dispose()

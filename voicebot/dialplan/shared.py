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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.engine import DatabaseParams, create_engine, opened, sessionmaker
from voicebot.db.models import DialplanState, DialplanVersion
from voicebot.dialplan.versions import StoreState, VersionError, VersionStore, folder_name
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
        for name in (row.plan_id, *state.refs()):  # they become folder names on every node
            try:
                folder_name(name)
            except VersionError as exc:
                raise VersionError(f"shared dialplan state: {exc}") from None
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
    revision, only if the shared state is still at ``base_revision`` (one conditional statement, so
    two admins at once cannot both win); VersionError otherwise, and nothing is written."""
    state = store.state(plan_id)
    stale = VersionError(
        f"{plan_id} was changed by someone else meanwhile (not at revision {base_revision} any more): "
        "nothing was changed; look at `voicebot dialplan status` and run it again"
    )
    stored = set(await session.scalars(select(DialplanVersion.ref).where(DialplanVersion.plan_id == plan_id)))
    for ref in state.refs():
        if ref not in stored:
            session.add(DialplanVersion(plan_id=plan_id, ref=ref, files=store.version_files(plan_id, ref)))
    values = {
        "live": state.live,
        "canary": state.canary,
        "canary_percent": state.canary_percent,
        "history": list(state.history),
        "revision": base_revision + 1,
    }
    if base_revision == 0:  # the first publish of this dialplan: only if nobody else's came first
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(DialplanState)
            .values(plan_id=plan_id, **values)
            .on_conflict_do_nothing(index_elements=["plan_id"])
        )
        if (await session.execute(stmt.returning(DialplanState.plan_id))).scalar_one_or_none() is None:
            raise stale
    else:
        res = await session.execute(
            update(DialplanState)
            .where(DialplanState.plan_id == plan_id, DialplanState.revision == base_revision)
            .values(**values)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise stale
    await session.flush()
    return base_revision + 1


async def apply(
    url: str, store: VersionStore, op: Callable[[VersionStore], T], plan_id_of: Callable[[T], str]
) -> T:
    """Pull the shared state into a scratch copy, apply ``op`` there (the node's own copy, which its
    sync may be rewriting, is never half-changed), push it, then bring ``store`` up to date. A
    refused push changes nothing anywhere. (The admin console awaits this; the CLI runs `change`.)"""
    async with opened(url) as engine:
        with tempfile.TemporaryDirectory(prefix="voicebot-dialplans-") as tmp:
            scratch = VersionStore(Path(tmp))
            async with sessionmaker(engine)() as session:
                await pull(session, scratch)
            result = op(scratch)
            plan_id = plan_id_of(result)
            base = scratch.state(plan_id).revision  # what the change was made on (kept by op)
            async with sessionmaker(engine)() as session, session.begin():
                await push(session, scratch, plan_id, base)
        async with sessionmaker(engine)() as session:
            await pull(session, store)
        return result


def change(
    url: str, store: VersionStore, op: Callable[[VersionStore], T], plan_id_of: Callable[[T], str]
) -> T:
    """What `voicebot dialplan publish|promote|rollback` does when the versions are shared."""
    return asyncio.run(apply(url, store, op, plan_id_of))


def pull_now(url: str, store: VersionStore) -> list[str]:
    async def go() -> list[str]:
        async with opened(url) as engine, sessionmaker(engine)() as session:
            return await pull(session, store)

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

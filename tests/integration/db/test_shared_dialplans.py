"""Published dialplan versions shared through real SQLite and PostgreSQL: what one node (or an admin's
CLI) publishes, promotes or rolls back is what every other node's copy becomes, a version carries its
subflows, and two admins changing the same dialplan at once cannot overwrite each other."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.peers import call_bot

from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.dialplan import shared
from voicebot.dialplan.versions import VersionError, VersionStore

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
EXAMPLE = (REPO / "dialplans" / "example.yaml").read_text()


def write(folder: Path, greeting: str, version: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"example-{version}.yaml"
    path.write_text(
        EXAMPLE.replace("Hello, this is voicebot.", greeting).replace("version: 1", f"version: {version}")
    )
    return path


def test_what_one_node_publishes_every_node_serves(db_url: str, tmp_path: Path) -> None:
    node_a, node_b = VersionStore(tmp_path / "a"), VersionStore(tmp_path / "b")
    v1 = shared.change(db_url, node_a, lambda s: s.publish(write(tmp_path, "One.", 1)), lambda r: r[0].id)[1]
    v2 = shared.change(
        db_url, node_a, lambda s: s.publish(write(tmp_path, "Two.", 2), canary_percent=10), lambda r: r[0].id
    )[1]
    assert shared.pull_now(db_url, node_b) == ["example"]
    st = node_b.state("example")
    assert (st.live, st.canary, st.canary_percent, st.revision) == (v1, v2, 10, 2)
    assert "Two." in node_b.version_files("example", v2)["plan.yaml"]
    assert shared.pull_now(db_url, node_b) == []  # nothing new: nothing rewritten
    # Promote on node B (another admin's host); node A follows.
    assert shared.change(db_url, node_b, lambda s: s.promote("example"), lambda _: "example") == v2
    shared.pull_now(db_url, node_a)
    assert (node_a.state("example").live, node_a.state("example").canary) == (v2, None)
    assert shared.change(db_url, node_a, lambda s: s.rollback("example"), lambda _: "example") == v1
    shared.pull_now(db_url, node_b)
    assert node_b.state("example").live == v1 and node_b.state("example").revision == 4
    assert node_b.resolve("example", "any-call") == tmp_path / "b" / "example" / v1 / "plan.yaml"


def test_a_stale_change_is_refused_and_changes_nothing(db_url: str, tmp_path: Path) -> None:
    node_a, node_b = VersionStore(tmp_path / "a"), VersionStore(tmp_path / "b")
    shared.change(db_url, node_a, lambda s: s.publish(write(tmp_path, "One.", 1)), lambda r: r[0].id)
    shared.pull_now(db_url, node_b)
    shared.change(db_url, node_a, lambda s: s.publish(write(tmp_path, "Two.", 2)), lambda r: r[0].id)

    async def push_stale() -> None:  # node B changes its copy without pulling first
        node_b.publish(write(tmp_path, "Three.", 3))
        engine = create_engine(DatabaseParams(url=db_url, pool_size=1))
        try:
            async with sessionmaker(engine)() as session, session.begin():
                await shared.push(session, node_b, "example", node_b.state("example").revision)
        finally:
            await engine.dispose()

    with pytest.raises(VersionError, match="changed by someone else meanwhile"):
        asyncio.run(push_stale())
    fresh = VersionStore(tmp_path / "c")
    shared.pull_now(db_url, fresh)
    assert fresh.state("example").live.startswith("2-")  # type: ignore[union-attr]


def test_a_version_in_the_database_cannot_write_outside_its_folder(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "store")
    with pytest.raises(VersionError, match="outside its version folder"):
        store.write_version("example", "1-abc", {"plan.yaml": "id: x", "../../escape.txt": "x"})
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "store" / "example" / "1-abc").exists()


async def test_a_promote_from_an_admins_host_reaches_a_running_node(
    voicebot, db_url: str, tmp_path: Path
) -> None:
    """A running node (its own dialplan_store) serves what an admin publishes elsewhere, on its next call."""
    routed = write(tmp_path / "plans", "Hello from version one.", 1)
    server = voicebot(
        VOICEBOT_CALL__LOGIC="dialplan",
        VOICEBOT_DATABASE__URL=db_url,
        VOICEBOT_ROUTES=json.dumps([{"match": "*", "dialplan": str(routed)}]),
    )
    admin_env = {
        **os.environ,
        "VOICEBOT_DATABASE__URL": db_url,
        "VOICEBOT_DIALPLAN_STORE": str(tmp_path / "admin-host-store"),  # not the node's folder
    }
    published = subprocess.run(
        [
            sys.executable,
            "-m",
            "voicebot.cli",
            "dialplan",
            "publish",
            str(write(tmp_path / "plans", "Hi, two.", 2)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=admin_env,
        cwd=tmp_path,
    )
    assert published.returncode == 0, published.stderr
    assert "shared through the database" in published.stdout
    server.wait_log(r"dialplan\.shared_state.*live=2-", timeout=15)
    caller = call_bot(tmp_path, server.port, "--duration", "4")
    caller.result(timeout=30)
    (line,) = server.wait_log(r"dialplan\.loaded", timeout=15)
    assert re.search(r"version=2\b", line), line

"""Publishing, canaries, promotion and rollback; calls pick their version from the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.callworker.params import CallWorkerParams
from voicebot.callworker.plans import plan_for_call
from voicebot.cli import main
from voicebot.dialplan.interpreter import CallStarted, Interpreter, SayAction
from voicebot.dialplan.versions import VersionError, VersionStore

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = (REPO / "dialplans" / "example.yaml").read_text()


def write(tmp_path: Path, name: str, greeting: str, version: int = 1) -> Path:
    path = tmp_path / name
    path.write_text(
        EXAMPLE.replace("Hello, this is voicebot.", greeting).replace("version: 1", f"version: {version}")
    )
    return path


def test_publish_canary_promote_rollback(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "store")
    _, v1 = store.publish(write(tmp_path, "a.yaml", "Hi one."))
    _, v2 = store.publish(write(tmp_path, "b.yaml", "Hi two.", version=2), canary_percent=25)
    st = store.state("example")
    assert (st.live, st.canary, st.canary_percent) == (v1, v2, 25)
    picks = [store.resolve("example", f"call-{i}") for i in range(400)]
    share = sum(p is not None and p.parent.name.startswith("2-") for p in picks) / len(picks)
    assert 0.18 < share < 0.32  # about a quarter of new calls, stable per call id
    assert store.resolve("example", "call-7") == store.resolve("example", "call-7")
    assert store.promote("example") == v2 and store.state("example").history == [v1]
    assert store.rollback("example") == v1  # one command back to the previous version
    with pytest.raises(VersionError, match="nothing to roll back"):
        store.rollback("example")


def test_broken_files_are_never_published_and_live_stays(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "store")
    _, v1 = store.publish(write(tmp_path, "a.yaml", "Hi."))
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.replace("goto: to_sales", "goto: to_saels"))
    with pytest.raises(VersionError, match="to_saels"):
        store.publish(bad)
    (tmp_path / "evil.yaml").write_text("id: !!python/object/apply:os.system [id]\n")
    with pytest.raises(VersionError, match="not allowed"):
        store.publish(tmp_path / "evil.yaml")
    assert store.state("example").live == v1


def test_a_call_runs_the_published_version(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "store")
    routed = write(tmp_path, "routed.yaml", "From the file.")
    params = CallWorkerParams(dialplan_store=tmp_path / "store")
    first = Interpreter(plan_for_call(params, str(routed), "c1")).handle(CallStarted(0.0))[0]
    assert isinstance(first, SayAction) and first.text == "From the file."
    store.publish(write(tmp_path, "pub.yaml", "From the store."))
    first = Interpreter(plan_for_call(params, str(routed), "c2")).handle(CallStarted(0.0))[0]
    assert isinstance(first, SayAction) and first.text == "From the store."


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "s")
    assert main(["dialplan", "publish", str(write(tmp_path, "a.yaml", "A.")), "--store", store]) == 0
    assert (
        main(
            [
                "dialplan",
                "publish",
                str(write(tmp_path, "b.yaml", "B.", 2)),
                "--canary",
                "10",
                "--store",
                store,
            ]
        )
        == 0
    )
    assert main(["dialplan", "rollback", "example", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "is canary for 10% of new calls" in out and '"canary": null' in out.split("rollback")[-1]
    assert main(["dialplan", "promote", "example", "--store", store]) == 2  # no canary left: clear error


def test_a_published_version_carries_its_subflows(tmp_path: Path) -> None:
    """billing.yaml calls subflows/verify_account.yaml: the store keeps both, frozen together."""
    src = tmp_path / "plans"
    (src / "subflows").mkdir(parents=True)
    for rel in ("billing.yaml", "subflows/verify_account.yaml"):
        (src / rel).write_bytes((REPO / "dialplans" / rel).read_bytes())
    store = VersionStore(tmp_path / "store")
    plan, v1 = store.publish(src / "billing.yaml", known_queues=None, allowed_bases=None)
    live = store.resolve(plan.id, "call-1")
    assert live is not None and (live.parent / "subflows" / "verify_account.yaml").is_file()
    params = CallWorkerParams(dialplan_store=tmp_path / "store")
    assert plan_for_call(params, str(src / "billing.yaml"), "call-1").content_hash == plan.content_hash
    # Editing the shared subflow changes nothing for the published version, and makes a new one.
    sub = src / "subflows" / "verify_account.yaml"
    sub.write_text(sub.read_text().replace("five digit account number", "account number"))
    assert "five digit" in (live.parent / "subflows" / "verify_account.yaml").read_text()
    _, v2 = store.publish(src / "billing.yaml")
    assert v2 != v1 and store.state(plan.id).history == [v1]


def test_subflows_outside_the_dialplan_folder_are_not_published(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "plans").mkdir()
    sub = (REPO / "dialplans" / "subflows" / "verify_account.yaml").read_bytes()
    (tmp_path / "shared" / "verify_account.yaml").write_bytes(sub)
    billing = (REPO / "dialplans" / "billing.yaml").read_text()
    path = tmp_path / "plans" / "billing.yaml"
    path.write_text(billing.replace("subflows/verify_account.yaml", "../shared/verify_account.yaml"))
    with pytest.raises(VersionError, match="outside"):
        VersionStore(tmp_path / "store").publish(path)


@pytest.mark.parametrize("plan_id", ["..", ".", "../other", "a/b", ".hidden", "", "x" * 129, "naïve"])
def test_a_plan_id_that_is_not_a_plain_name_never_becomes_a_path(tmp_path: Path, plan_id: str) -> None:
    store = VersionStore(tmp_path / "store")
    (tmp_path / "state.json").write_text('{"live": "1-a", "canary": "2-b", "canary_percent": 5}')
    for change in (store.promote, store.rollback, store.state, lambda p: store.set_canary_share(p, 50)):
        with pytest.raises(VersionError, match="not a dialplan id"):
            change(plan_id)
    with pytest.raises(VersionError, match="not a dialplan id"):
        store.write_version("example", plan_id or "..", {"plan.yaml": "id: x\n"})
    assert (tmp_path / "state.json").read_text().startswith('{"live": "1-a"')
    path = tmp_path / "bad-id.yaml"
    path.write_text(EXAMPLE.replace("id: example", f"id: {plan_id!r}"))
    with pytest.raises(VersionError, match="id must be a name"):
        store.publish(path)


def test_a_folder_made_by_hand_is_not_listed_as_a_plan(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "store")
    store.publish(write(tmp_path, "a.yaml", "Hi."))
    for name in (".backup", "with space"):
        (tmp_path / "store" / name).mkdir()
        (tmp_path / "store" / name / "state.json").write_text("{}")
    assert store.plans() == ["example"]

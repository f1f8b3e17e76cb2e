"""`hub.py resubmit`: by id and by filter, with a dry run, recording who did it."""

from __future__ import annotations

import subprocess

from sqlalchemy import select

from hub import Hub, load_config
from store.models import AuditEntry, OutboxMessage
from tests.support import ROOT, hub_command
from tests.test_outbox import drain, put, status_of


def run(config, *args):
    return subprocess.run(hub_command(config, "resubmit", *args), cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"HUB_LOG_LEVEL": "WARNING",
                                                      "PATH": "/usr/bin:/bin"})


def test_resubmit_command(make_config, store_url, peer):
    config = make_config(store_url, partners={"peer0": {"base_url": peer.url + "/p0"}})
    hub = Hub(load_config(config))
    try:
        peer.state.mode = "reject"
        ids = put(hub, n=3)
        other = put(hub, n=1, interface="loopback.other")
        drain(hub)
        peer.state.mode = "ok"

        dry = run(config, "--filter", "--interface", "loopback.post", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "试运行：将重新提交 3 条消息（未发送任何消息）" in dry.stdout
        assert dry.stdout.splitlines()[0].startswith("编号\t状态\t接口")
        first = dry.stdout.splitlines()[1].split("\t")
        assert first[1] == "已停止（dead）", first  # the Chinese name, the code beside it
        assert first[0] == str(ids[0]) and first[3].endswith("（peer0）")
        assert {status_of(hub, i).status for i in ids + other} == {"dead"}

        one = run(config, "--id", str(ids[0]), "--actor", "carol")
        assert one.returncode == 0 and one.stdout.strip() == f"已重新提交 1 条消息：{ids[0]}"
        rest = run(config, "--filter", "--item", "rental_filing", "--county", "511702",
                   "--interface", "loopback.post", "--actor", "dave")
        assert rest.stdout.strip() == f"已重新提交 2 条消息：{ids[1]}、{ids[2]}"
        again = run(config, "--filter", "--interface", "loopback.post", "--actor", "dave")
        assert again.returncode == 0 and again.stdout.strip() == "已重新提交 0 条消息：无"

        drain(hub)
        assert [status_of(hub, i).status for i in ids] == ["done"] * 3
        assert status_of(hub, other[0]).status == "dead"  # not matched, not touched
        with hub.transaction() as s:
            rows = s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids))
                             .order_by(OutboxMessage.id)).all()
            assert [r.resubmitted_by for r in rows] == ["carol", "dave", "dave"]
            audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "resubmit")
                              .order_by(AuditEntry.id)).all()
            assert [(a.actor, a.target) for a in audit][:2] == [
                ("carol", str(ids[0])), ("dave", f"{ids[1]},{ids[2]}")]
        neither = run(config)  # neither --id nor --filter
        assert neither.returncode == 2 and neither.stdout == ""
        assert neither.stderr.strip() == ("错误：请用 --id N（可重复）指定消息，"
                                          "或用 --filter 加筛选条件选出消息")
    finally:
        hub.close()

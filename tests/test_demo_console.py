"""The demo's console shows dead messages and alerts as they happen, in Chinese, not
only successful calls (a real delivery to a peer that refuses, a real store)."""

from __future__ import annotations

from adapters.sim.demo import Demo
from hub import Hub, load_config
from tests.test_outbox import drain, put


def test_console_reports_a_dead_message_and_its_alert_once(make_config, sqlite_url, peer):
    config = make_config(sqlite_url, partners={"peer0": {"base_url": peer.url + "/p0"}})
    hub = Hub(load_config(config))
    try:
        demo = Demo(hub, "http://127.0.0.1:9", every=0)
        seen: set[int] = set()
        lines, last = demo.news(seen, 0)
        assert lines == []
        peer.state.mode = "reject"
        [mid] = put(hub)
        drain(hub)
        lines, last = demo.news(seen, last)
        text = "\n".join(lines)
        assert f"消息 {mid} 已停止" in text
        assert "告警 消息发送失败（已停止重试）" in text
        assert demo.news(seen, last)[0] == []  # each reported once
    finally:
        hub.close()

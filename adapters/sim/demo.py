"""``hub.py demo``: the hub with simulated peers around it, so a newcomer sees it work.

In one process it starts the simulated provincial platform, the simulated county
smart platforms and the simulated bank — each only where the config points its
partner at this machine (127.0.0.1), on the port the config names — then the hub
itself (web app, delivery workers, scheduler). Every ``--every`` seconds the province
sends a sample application, in turn to a smart county (通川区 511702: delivered,
then 受理/审批/办结 come back by callback) and to a manual one (渠县 511725: it waits
in the operators' queue). The bank, once its supervised account is set up through
the hub, sends deposits, withdrawals and now and then a freeze.

Nothing here is used in production: ``hub.py serve`` runs the hub alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import secrets
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from mapping.names import name

if TYPE_CHECKING:
    from hub import Config, Hub

log = logging.getLogger("cityhub.demo")
CST = timezone(timedelta(hours=8))
LOOPBACK = ("127.0.0.1", "localhost")
SMART_COUNTY, MANUAL_COUNTY = "511702", "511725"
BANK_USER = "demo-bank-front"
#: The demo's province user (simulated IdP) and the operator it is mapped to.
SSO_SUB, SSO_UNIT, SSO_OPERATOR = "demo.operator", "P-UNIT-DEMO", "demo-sso"


def _local_port(url: str) -> int | None:
    parts = urlsplit(url)
    return parts.port if parts.hostname in LOOPBACK and parts.port else None


def sample_application(n: int, county: str) -> dict[str, Any]:
    """A valid rental filing (房屋租赁备案) as the province would send it."""
    now = datetime.now(CST)
    return {
        "apply_no": f"510000-{now:%Y%m%d}-D{now:%H%M%S}{n:03d}",
        "city_code": "511700",
        "county_codes": [county],
        "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X",
                      "uscc": None, "phone": "13800138000"},
        "submitted_at": now.isoformat(timespec="seconds"),
        "data": {"lessee_name": "李四", "lessee_id_no": "11010519491231002X",
                 "lessor_name": "王五", "lessor_id_no": "110105198001011238",
                 "house_id": f"H-{n:04d}", "address": "达州市示范路1号"},
        "materials": [],
    }


def _demo_password(hub: Hub) -> str:
    """The simulated bank's login, generated once into the local secrets file."""
    path = hub.config.secrets_file
    data = json.loads(path.read_text(encoding="utf-8"))
    demo = data.setdefault("demo", {})
    if "bank_password" not in demo:
        demo["bank_password"] = secrets.token_urlsafe(18)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return demo["bank_password"]


def _demo_sso_password(hub: Hub) -> str:
    """The simulated IdP's password of the demo province user, generated once."""
    path = hub.config.secrets_file
    data = json.loads(path.read_text(encoding="utf-8"))
    demo = data.setdefault("demo", {})
    if "sso_password" not in demo:
        demo["sso_password"] = secrets.token_urlsafe(12)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return demo["sso_password"]


def ensure_sso_operator(hub: Hub) -> None:
    """The demo operator the province user maps to: unit P-UNIT-DEMO, 通川区, viewing."""
    from sqlalchemy import select

    from admin.people import create_user, set_role_functions, set_user_access
    from store.admin_models import AdminRole, AdminUnit, AdminUser

    with hub.transaction() as s:
        if s.scalars(select(AdminUser).where(AdminUser.username == SSO_OPERATOR)).first():
            return
        unit = s.scalars(select(AdminUnit).where(AdminUnit.province_unit_id == SSO_UNIT)).first()
        if unit is None:
            unit = AdminUnit(name="演示单位（通川区住建局）", province_unit_id=SSO_UNIT,
                             division=SMART_COUNTY)
            s.add(unit)
            s.flush()
        role = s.scalars(select(AdminRole).where(AdminRole.name == "演示经办")).first()
        if role is None:
            role = AdminRole(name="演示经办", description="hub.py demo")
            s.add(role)
            s.flush()
            set_role_functions(s, role, ("view", "mark_stage", "export"))
        user = create_user(s, SSO_OPERATOR, "演示经办人", secrets.token_urlsafe(24),
                           unit_id=unit.id, province_user_id=SSO_SUB)
        set_user_access(s, user, [role.id], (SMART_COUNTY,), hub.city.counties)


class Demo:
    def __init__(self, hub: Hub, hub_url: str, every: float) -> None:
        self.hub, self.hub_url, self.every = hub, hub_url, every
        self.peers: list[Any] = []
        self.bank: Any = None

    def start_peers(self) -> None:
        hub = self.hub
        province = hub.partners.get("province")
        if province and (port := _local_port(province.base_url)) and province.secret:
            from adapters.sim.province import ProvinceSim

            sim = ProvinceSim(province.secret, hub.config.hub_app_id, port=port)
            if "entry" in hub.config.inbound:
                sim.portal_hub_url, sim.portal_county = self.hub_url, SMART_COUNTY
            self.peers.append(sim.start())
            print(f"  模拟省平台            {province.base_url}", flush=True)
            if sim.portal_hub_url:
                print(f"  模拟一网通办门户      {sim.url}/portal", flush=True)
        counties = {p.division: p for p in hub.partners.values()
                    if p.division and p.secret and _local_port(p.base_url)}
        ports = {_local_port(p.base_url) for p in counties.values()}
        if len(ports) == 1:
            from adapters.sim.county import CountySim, SimConfig

            config = SimConfig(hub_url=self.hub_url, city=hub.city.code, delays=(3, 5, 5),
                               secrets={code: p.secret for code, p in counties.items()})
            self.peers.append(CountySim(config, port=ports.pop()).start())
            smart = "、".join(hub.city.counties.get(c, c) for c in sorted(counties))
            print(f"  模拟区县智慧平台      {smart}（其余区县人工办理）", flush=True)
        self._start_idp()
        receivers = {a: p for a in ("tax", "fund") if (p := hub.partners.get(a)) is not None
                     and p.secret and _local_port(p.base_url)}
        dept_ports = {_local_port(p.base_url) for p in receivers.values()}
        if len(dept_ports) == 1:  # the tax bureau's and fund centre's receivers (departments.md)
            from adapters.sim.departments import DepartmentSim

            self.peers.append(DepartmentSim({a: p.secret for a, p in receivers.items()},  # type: ignore[misc]
                                            hub.config.hub_app_id,
                                            port=dept_ports.pop() or 0).start())
            departments = "、".join(name("partners", a) for a in sorted(receivers))
            print(f"  模拟部门接收端        {departments}", flush=True)
        banks = [p for p in hub.partners.values()
                 if p.options.get("bank_code") and _local_port(p.base_url)]
        if banks and "bank_soap" in hub.config.inbound:
            self._start_bank(banks[0])

    def _start_idp(self) -> None:
        """The simulated province IdP where ``identity`` points at this machine."""
        from admin.identity_config import identity_of
        from admin.sso import idp_secret

        hub = self.hub
        identity = identity_of(hub.config)
        users = {SSO_SUB: {"password": _demo_sso_password(hub), "name": "演示经办人",
                           "unit_id": SSO_UNIT}}
        back = (hub.config.public_url.rstrip("/") + "/admin",)
        if identity.oidc is not None and (port := _local_port(identity.oidc.issuer)):
            secret = idp_secret(hub)
            if not secret:
                print("  （未启用统一身份认证：请运行 hub.py init-secrets 生成客户端密钥）")
                return
            from adapters.sim.oidc import OidcSim

            self.peers.append(OidcSim(users, identity.oidc.client_id, secret, back,
                                      port=port).start())
        elif identity.cas is not None and (port := _local_port(identity.cas.server)):
            from adapters.sim.cas import CasSim

            self.peers.append(CasSim(users, back, port=port).start())
        else:
            return
        ensure_sso_operator(hub)
        print(f"  模拟省统一身份认证    （{identity.protocol}）用 {SSO_SUB} / "
              f"{users[SSO_SUB]['password']} 登录", flush=True)

    def _start_bank(self, partner: Any) -> None:
        from adapters.fund.auth import add_login
        from adapters.sim.bank import SimBank

        password = _demo_password(self.hub)
        code = partner.options["bank_code"]
        with self.hub.transaction() as s:
            add_login(s, code, BANK_USER, password)
        self.bank = SimBank(self.hub_url, code, BANK_USER, password,
                            amounts_in_fen=bool(partner.options.get("amounts_in_fen")),
                            port=_local_port(partner.base_url) or 0).start()
        print(f"  模拟银行 {name('banks', code)}（{code}）  {self.bank.url}?wsdl", flush=True)

    def setup_account(self) -> None:
        """Ask the bank (through the hub's outbox) to open a supervised account."""
        from adapters.bank_soap import fund_desk
        from adapters.fund.instructions import issue

        if self.bank is None:
            return
        desk = fund_desk(self.hub)
        with self.hub.transaction() as s:
            issue(self.hub, s, desk.settings, "04", self.bank.bank_code, {
                "developer_name": "达州示范置业有限公司", "developer_uscc": "91511700MA62XXXX0X",
                "project_name": "示范花园", "permit_no": "达市房预售证第2026001号",
                "branch_name": "达州分行"}, division=SMART_COUNTY, actor="demo")

    def traffic(self, stop: threading.Event) -> None:
        from adapters.sim.province import ProvinceClient

        province = self.hub.partners.get("province")
        if province is None or province.secret is None:
            return
        client = ProvinceClient(self.hub_url, province.secret)
        rng = random.Random()
        for n in itertools.count(1):
            county = SMART_COUNTY if n % 2 else MANUAL_COUNTY
            try:
                answer = client.submit("rental_filing", sample_application(n, county))
                log.info("province → hub rental_filing for %s: %s %s", county, answer.status,
                         (answer.body or {}).get("code"))
                if self.bank is not None and self.bank.state.book:
                    self.bank.tick(rng)
            except Exception:
                log.exception("demo traffic failed")
            if stop.wait(self.every):
                return

    def watch(self, stop: threading.Event, every: float = 2.0) -> None:
        """Print dead messages and new alerts as they happen (not only the successes)."""
        from sqlalchemy import func, select

        from store.models import Alert, OutboxMessage

        with self.hub.db.session() as s:
            last_alert = s.scalar(select(func.max(Alert.id))) or 0
            seen_dead = set(s.scalars(select(OutboxMessage.id).where(
                OutboxMessage.status == "dead")))
        while not stop.wait(every):
            try:
                lines, last_alert = self.news(seen_dead, last_alert)
            except Exception:
                log.exception("demo watch failed")
                continue
            for line in lines:
                print(line, flush=True)

    def news(self, seen_dead: set[int], last_alert: int) -> tuple[list[str], int]:
        """Console lines for messages that died and alerts raised since the last look."""
        from sqlalchemy import select

        from store.models import Alert, OutboxMessage

        lines: list[str] = []
        with self.hub.db.session() as s:
            dead = s.execute(select(OutboxMessage.id, OutboxMessage.interface,
                                    OutboxMessage.attempts, OutboxMessage.last_error).where(
                OutboxMessage.status == "dead", OutboxMessage.id.not_in(seen_dead or {-1}))
                .order_by(OutboxMessage.id).limit(50)).all()
            alerts = s.execute(select(Alert.id, Alert.kind, Alert.title)
                               .where(Alert.id > last_alert).order_by(Alert.id).limit(50)).all()
        for mid, interface, attempts, error in dead:
            seen_dead.add(mid)
            lines.append(f"  ✗ 消息 {mid} 已停止（{name('interfaces', interface)}，"
                         f"尝试 {attempts} 次）：{(error or '')[:80]}  "
                         "→ /admin/messages?status=dead")
        for aid, kind, title in alerts:
            last_alert = max(last_alert, aid)
            lines.append(f"  ! 告警 {name('alert_kinds', kind)}：{title[:100]}")
        return lines, last_alert

    def stop(self) -> None:
        for peer in self.peers:
            peer.stop()
        if self.bank is not None:
            self.bank.stop()


def demo_config(config: Config, host: str | None, port: int | None) -> Config:
    """The config of this demo run: listening on ``host``/``port`` (``make run PORT=x``)
    and, when ``public_url`` is this machine's, the hub's address moved with it — the
    simulated peers and every URL the hub hands them (material urls, the WSDL's service
    address, the sign-in's way back) use the port the hub really listens on. A public_url
    on another machine (a proxy in front) is kept."""
    host, port = host or config.host, port or config.port
    url = config.public_url
    parts = urlsplit(url)
    if parts.hostname in LOOPBACK:  # its scheme and path kept, the address is this run's
        shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        url = urlunsplit((parts.scheme, f"{shown}:{port}", parts.path, "", "")).rstrip("/")
    return replace(config, host=host, port=port, public_url=url)


def cmd_demo(args: argparse.Namespace) -> int:
    from hub import Hub, load_config, run_server

    hub = Hub(demo_config(load_config(args.config), args.host, args.port))
    host, port = hub.config.host, hub.config.port
    local = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    demo = Demo(hub, f"http://{local}:{port}", args.every)
    print("cityhub 演示：平台和模拟的对接方一起运行（生产环境请用 hub.py serve）",
          flush=True)
    print(f"  平台地址              {hub.config.public_url}", flush=True)
    demo.start_peers()

    def on_ready(stop: threading.Event) -> None:
        demo.setup_account()
        if args.every > 0:
            threading.Thread(target=demo.traffic, args=(stop,), daemon=True,
                             name="demo-traffic").start()
        threading.Thread(target=demo.watch, args=(stop,), daemon=True,
                         name="demo-watch").start()
        print(f"  管理页面              {hub.config.public_url}/admin/"
              "  （首次使用请先运行 .venv/bin/python hub.py create-admin --username 用户名）",
              flush=True)

    try:
        return run_server(hub, host, port, on_ready=on_ready)
    finally:
        demo.stop()


def add_commands(sub: Any) -> None:
    from cliwords import seconds, whole_number

    d = sub.add_parser("demo", help="演示：平台和模拟的省平台、区县平台、银行一起运行",
                       description="演示：平台和模拟的省平台、区县平台、银行一起运行"
                                   "（生产环境请用 serve）")
    d.add_argument("--host", help="监听地址（默认：配置 listen.host）")
    d.add_argument("--port", type=whole_number,
                   help="监听端口（默认：配置 listen.port；平台地址 public_url 随之改变）")
    d.add_argument("--every", type=seconds, default=20.0,
                   help="每隔多少秒发送一件示例申请（0：不发送；默认 20）")
    d.set_defaults(func=cmd_demo)

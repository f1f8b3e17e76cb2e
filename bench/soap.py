"""Deposit notices per second through the hub's real SOAP server, next to a bare spyne
service echoing the same message on the same kind of server, in the same run.

    python bench/soap.py [--seconds 6] [--rounds 3] [--clients 4]
                         [--server werkzeug|waitress] [--postgres URL]

The hub path is the whole thing: hardened parse, schema validation, token check,
idempotency, ledger row, routing (an outbox message), call log, commit (on SQLite shared by
the notices that arrive together, ``store.group_commit``; each is still committed before
it is answered) — on SQLite,
and on PostgreSQL too with ``--postgres`` (default: $HUB_TEST_DATABASE_URL; its public
schema is dropped and rebuilt). The baseline is spyne alone (same operation signature,
no validation, no store). Both run on the same kind of threaded server in this
process; the measured time is split into ``--rounds`` alternating slices (baseline,
hub, baseline, ...) so a change of load on the machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spyne import Application, ServiceBase, rpc  # noqa: E402
from spyne.protocol.soap import Soap11  # noqa: E402
from spyne.server.wsgi import WsgiApplication  # noqa: E402

from adapters.fund import service as fs  # noqa: E402
from adapters.sim.bank import ServerThread  # noqa: E402

ACCOUNT = "6217000000000001"
ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:f="urn:cityhub:fund:v1"><soapenv:Body><f:DepositNotice>'
    "<f:token>{token}</f:token><f:serial_no>{serial}</f:serial_no>"
    f"<f:account_no>{ACCOUNT}</f:account_no><f:amount>1234.56</f:amount>"
    "<f:occurred_at>2026-11-20T10:30:00+08:00</f:occurred_at>"
    "<f:payer_name>张三</f:payer_name><f:payer_account>6222020000000001</f:payer_account>"
    "<f:pay_method>01</f:pay_method><f:house_code>511702-001-0101</f:house_code>"
    "<f:buyer_name>张三</f:buyer_name></f:DepositNotice></soapenv:Body></soapenv:Envelope>"
)


def bare_spyne_app() -> WsgiApplication:
    """The same DepositNotice signature, answering 0000 and doing nothing else."""

    class Echo(ServiceBase):
        @rpc(fs.Token, fs.Key, fs.Key, fs.Amount, fs.When, fs.Text, fs.Text, fs.Code,
             fs.Unicode(max_len=64), fs.Text, fs.Text, _returns=fs.Result)
        def DepositNotice(ctx, token, serial_no, account_no, amount, occurred_at,  # noqa: N802, N805
                          payer_name, payer_account, pay_method, house_code, buyer_name,
                          remark):
            return fs.Result(result_code="0000", result_msg="booked")

    return WsgiApplication(Application([Echo], tns=fs.NS, in_protocol=Soap11(),
                                       out_protocol=Soap11()))


def hub_app(workdir: Path, url: str | None = None):  # type: ignore[no-untyped-def]
    from adapters.fund.auth import add_login
    from adapters.web import make_app
    from bench._common import reset_store
    from hub import Hub, load_config
    from store.fund_models import SupervisedAccount
    from tests.support import write_config

    url = url or f"sqlite:///{workdir / 'bench.db'}"
    reset_store(url)
    config = write_config(workdir, url, inbound=["bank_soap", "pos"],
                          partners={"bank_icbc": {"base_url": "http://127.0.0.1:9",
                                                  "bank_code": "ICBC"}},
                          scheduler={"enabled": False})
    hub = Hub(load_config(config))
    with hub.transaction() as s:
        add_login(s, "ICBC", "bench", "bench-password-123")
        s.add(SupervisedAccount(account_no=ACCOUNT, bank_code="ICBC", division="511702",
                                project_name="滨河花园"))
    return hub, make_app(hub)


class WaitressThread:
    """A WSGI app on waitress (the server ``hub.py serve`` runs) on 127.0.0.1, in a thread."""

    def __init__(self, app: Any, threads: int) -> None:
        from waitress.server import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads,
                                    ident=None)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # its sockets closed under the loop by stop()
            self.server.run()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}"

    def start(self) -> WaitressThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.close()


def serve(app: Any, kind: str, threads: int) -> Any:
    return WaitressThread(app, threads).start() if kind == "waitress" else ServerThread(app).start()


def token_for(url: str) -> str:
    body = ('<?xml version="1.0"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:f="urn:cityhub:fund:v1"><soapenv:Body><f:Authenticate>'
            "<f:bank_code>ICBC</f:bank_code><f:username>bench</f:username>"
            "<f:password>bench-password-123</f:password></f:Authenticate></soapenv:Body>"
            "</soapenv:Envelope>")
    data = urllib3.request("POST", url, body=body.encode(),
                           headers={"Content-Type": "text/xml"}).data.decode()
    return data.split("token>")[1].split("<")[0]


def run(url: str, token: str, seconds: float, clients: int, prefix: str) -> tuple[float, int]:
    serial = itertools.count()
    lock = threading.Lock()
    done = [0]
    errors = [0]
    stop = time.monotonic() + seconds

    def client() -> None:
        pool = urllib3.PoolManager(maxsize=1, retries=False)
        while time.monotonic() < stop:
            with lock:
                n = next(serial)
            body = ENVELOPE.format(token=token, serial=f"{prefix}{n}").encode()
            resp = pool.request("POST", url, body=body, headers={
                "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
            ok = resp.status == 200 and b"result_code>0000<" in resp.data
            with lock:
                done[0] += 1
                errors[0] += 0 if ok else 1

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.monotonic() - started), errors[0]


def measure(hub_url: str, bare_url: str, token: str, args: argparse.Namespace,
            tag: str) -> tuple[float, float, int, int]:
    """(baseline/s, hub/s, baseline errors, hub errors) over alternating slices."""
    run(bare_url, token, 0.5, args.clients, f"warm-b{tag}")  # warm up both
    run(hub_url, token, 0.5, args.clients, f"warm-h{tag}")
    slice_ = args.seconds / args.rounds
    base = mine = 0.0
    base_err = mine_err = 0
    for r in range(args.rounds):
        rate, err = run(bare_url, token, slice_, args.clients, f"b{tag}{r}-")
        base, base_err = base + rate / args.rounds, base_err + err
        rate, err = run(hub_url, token, slice_, args.clients, f"h{tag}{r}-")
        mine, mine_err = mine + rate / args.rounds, mine_err + err
    return base, mine, base_err, mine_err


def report(store: str, base: float, mine: float, base_err: int, mine_err: int) -> None:
    ratio = mine / base if base else 0.0
    print(f"[{store}]")
    print(f"  bare spyne echo      : {base:8.1f} deposit notices/s ({base_err} errors)")
    print(f"  hub /soap/fund       : {mine:8.1f} deposit notices/s ({mine_err} errors, "
          "booked, routed, logged, committed)")
    print(f"  ratio hub / baseline : {ratio:8.1%}  (target >= 50%)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=6.0, help="measured time per side")
    p.add_argument("--rounds", type=int, default=3, help="alternating slices per side")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--server", choices=("werkzeug", "waitress"), default="werkzeug",
                   help="the threaded WSGI server both sides run on")
    p.add_argument("--threads", type=int, default=8, help="waitress worker threads")
    p.add_argument("--postgres", default=os.environ.get("HUB_TEST_DATABASE_URL"),
                   metavar="URL", help="also measure the hub on this PostgreSQL database "
                   "(dropped and rebuilt; default $HUB_TEST_DATABASE_URL)")
    p.add_argument("--no-postgres", dest="postgres", action="store_const", const=None)
    args = p.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("waitress").setLevel(logging.ERROR)
    stores = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
    print(f"{args.server} server, {args.clients} keep-alive client threads, "
          f"{args.seconds:g} s per side in {args.rounds} alternating slices")
    failed = False
    bare = serve(bare_spyne_app(), args.server, args.threads)
    try:
        for name, url in stores:
            with tempfile.TemporaryDirectory() as tmp:
                hub, app = hub_app(Path(tmp), url)
                ours = serve(app, args.server, args.threads)
                try:
                    hub_url = ours.url + "/soap/fund"
                    token = token_for(hub_url)
                    result = measure(hub_url, bare.url, token, args, name[0])
                finally:
                    ours.stop()
                    hub.close()
            report(name, *result)
            failed = failed or bool(result[2] or result[3])
    finally:
        bare.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

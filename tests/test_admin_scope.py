"""Data permissions by division on every page and export, and masked personal data."""

from __future__ import annotations

import io
import zipfile

from openpyxl import load_workbook
from sqlalchemy import select

from store.models import AuditEntry, CallLogEntry
from tests.manual_jobs import export, export_zip
from tests.support import wait_until
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    ID_NO,
    Client,
    add_operator,
    client,
    county_peer,
    new_case,
    served,
)


def _setup(served):  # noqa: F811
    hub = served.hub
    add_operator(hub, "op702", COUNTY_FUNCTIONS, ("511702",))
    add_operator(hub, "op725", COUNTY_FUNCTIONS, ("511725",))
    add_operator(hub, "root", ALL_FUNCTIONS)
    mine = new_case(hub, ["511702"], "A-702")
    other = new_case(hub, ["511703"], "B-703")
    both = new_case(hub, ["511702", "511703"], "C-BOTH")
    manual_725 = new_case(hub, ["511725"], "M-725")
    manual_723 = new_case(hub, ["511723"], "M-723")
    return mine, other, both, manual_725, manual_723


def test_county_operator_cannot_see_another_county(served, county_peer):  # noqa: F811
    mine, other, both, *_ = _setup(served)
    hub = served.hub
    hub.start_workers(threads=2)
    wait_until(lambda: len(county_peer.state.received) >= 4, what="deliveries")
    op = Client(served.url)
    op.login("op702")
    assert op.get(f"/admin/cases/{mine['subs']['511702']}").status_code == 200
    assert op.get(f"/admin/cases/{mine['parent']}").status_code == 200
    for case_no in (other["subs"]["511703"], other["parent"], both["subs"]["511703"]):
        resp = op.get(f"/admin/cases/{case_no}")
        assert resp.status_code == 404, case_no
        assert "B-703" not in resp.text
    # the shared parent shows only this county's sub-case
    page = op.get(f"/admin/cases/{both['parent']}").text
    assert both["subs"]["511702"] in page and both["subs"]["511703"] not in page
    listing = op.get("/admin/cases?all=1").text
    assert "A-702" in listing and "B-703" not in listing
    assert "511703" not in op.get("/admin/messages").text.split("id=\"message-list\"")[1]
    with hub.transaction() as s:
        foreign = s.scalars(select(CallLogEntry.id).where(
            CallLogEntry.division == "511703")).first()
    assert op.get(f"/admin/calls/{foreign}").status_code == 404
    csv_text = op.get("/admin/stats.csv").content.decode("utf-8-sig")
    assert "511702" in csv_text and "511703" not in csv_text
    # the city-wide operator sees both
    root = Client(served.url)
    root.login("root")
    assert root.get(f"/admin/cases/{other['parent']}").status_code == 200
    assert "511703" in root.get("/admin/stats.csv").content.decode("utf-8-sig")


def test_manual_export_never_contains_another_county(served):  # noqa: F811
    *_, manual_725, manual_723 = _setup(served)
    op = Client(served.url)
    op.login("op725")
    assert op.get("/admin/manual?county=511723").status_code == 404
    assert export(op, county="511723").status_code == 404
    queue = op.get("/admin/manual").text
    assert manual_725["subs"]["511725"] in queue and manual_723["subs"]["511723"] not in queue
    resp = export_zip(op)  # no county chosen: still only its own
    assert resp.status_code == 200
    outer = zipfile.ZipFile(io.BytesIO(resp.content))
    [xlsx_name] = [n for n in outer.namelist() if n.endswith(".xlsx")]
    wb = load_workbook(io.BytesIO(outer.read(xlsx_name)))
    cells = {str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row}
    assert manual_725["subs"]["511725"] in cells
    assert manual_723["subs"]["511723"] not in cells
    assert ID_NO not in cells  # masked: this role may not see personal data
    assert export(op, personal="1").status_code == 403


def test_personal_data_masked_and_unmasked_view_audited(served):  # noqa: F811
    mine, *_ = _setup(served)
    case_no = mine["subs"]["511702"]
    op = Client(served.url)
    op.login("op702")
    page = op.get(f"/admin/cases/{case_no}").text
    assert ID_NO not in page and "110" in page and "张三丰" not in page
    assert op.post(f"/admin/cases/{case_no}/reveal").status_code == 403
    root = Client(served.url)
    root.login("root")
    assert ID_NO not in root.get(f"/admin/cases/{case_no}").text
    revealed = root.post(f"/admin/cases/{case_no}/reveal", {"reason": "核对"}).text
    assert ID_NO in revealed and "张三丰" in revealed
    with served.hub.transaction() as s:
        rows = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "view_personal_data")).all()
    assert [(r.actor, r.target) for r in rows] == [("root", case_no)]
    # search by ID number goes through the keyed hash
    found = root.get("/admin/cases", params={"id_no": ID_NO}).text
    assert case_no in found
    assert case_no not in root.get("/admin/cases", params={"id_no": "110105194912310037"}).text


def test_a_county_auditor_sees_what_its_own_people_did(served):  # noqa: F811
    """The audit trail had no scope: a 通川区 auditor read the city administrator's
    reveals of 渠县 cases and 渠县 clerks' sign-ins and exports."""
    hub = served.hub
    _setup(served)
    add_operator(hub, "audit702", ("view", "view_audit"), ("511702",))
    with hub.transaction() as s:
        for actor, target in (("op702", "511702-case"), ("op725", "511725-case"),
                              ("root", "5117252026-case")):
            s.add(AuditEntry(actor=actor, action="view_personal_data", target=target))
    auditor = Client(served.url)
    auditor.login("audit702")
    page = auditor.get("/admin/audit", params={"action": "view_personal_data"}).text
    assert "511702-case" in page
    assert "511725-case" not in page and "5117252026-case" not in page
    root = Client(served.url)
    root.login("root")  # the city-wide auditor sees every entry
    page = root.get("/admin/audit", params={"action": "view_personal_data"}).text
    assert all(t in page for t in ("511702-case", "511725-case", "5117252026-case"))

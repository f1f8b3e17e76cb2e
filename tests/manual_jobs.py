"""The manual page's background export and import over HTTP, as a browser does them:
ask (a POST), follow the job (``/admin/manual/jobs/<id>``) until it ends, then download
the zip or read the page with the import's report (admin/jobs.py)."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import openpyxl
import requests

from tests.support import wait_until


def job_of(resp: requests.Response) -> int:
    """The job id the page was sent to after asking (``?job=N``)."""
    found = re.search(r"[?&]job=(\d+)", resp.url)
    assert found, (resp.status_code, resp.url, resp.text[:300])
    return int(found.group(1))


def wait_job(client: Any, job_id: int, timeout: float = 60) -> dict[str, Any]:
    """The job's last state once it is done or failed."""
    def ended() -> dict[str, Any] | None:
        job = client.get(f"/admin/manual/jobs/{job_id}").json()
        return job if job["state"] in ("done", "failed") else None

    return wait_until(ended, timeout=timeout, interval=0.1, what=f"job {job_id} to end")


def export(client: Any, **form: str) -> requests.Response:
    """Ask for an export on the page; the answer (the manual page, or a 403/404)."""
    client.get("/admin/manual")
    return client.post("/admin/manual/export", form)


def export_zip(client: Any, **form: str) -> requests.Response:
    """Export in the background and download the zip (the download's response)."""
    resp = export(client, **form)
    assert resp.status_code == 200, resp.text[:300]
    job = wait_job(client, job_of(resp))
    assert job["state"] == "done" and job["download"], job
    return client.get(job["download"])


def import_page(client: Any, data: bytes, filename: str = "filled.xlsx") -> str:
    """Import in the background; the manual page with the import's report."""
    client.get("/admin/manual")
    resp = client.http.post(client.base + "/admin/manual/import",
                            data={"csrf_token": client.token},
                            files={"workbook": (filename, data)})
    job_id = job_of(resp)
    job = wait_job(client, job_id)
    assert job["state"] == "done", job
    return client.get(f"/admin/manual?job={job_id}").text


def exported_workbook(zipped: bytes) -> Any:
    """The workbook inside an export's zip (openpyxl, editable)."""
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        [xlsx] = [n for n in z.namelist() if n.endswith(".xlsx")]
        return openpyxl.load_workbook(io.BytesIO(z.read(xlsx)))


def exported_sheet(zipped: bytes, title: str = "房屋租赁备案") -> tuple[Any, Any, list[Any]]:
    """(workbook, its sheet ``title``, that sheet's header labels) of an export's zip."""
    wb = exported_workbook(zipped)
    ws = wb[title]
    return wb, ws, [cell.value for cell in ws[1]]


def saved(wb: Any) -> bytes:
    """``wb`` as the bytes of an .xlsx file, as a clerk saves it."""
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()

"""A failed validation's opinion is stored as the province API says it (English, pushed so
to the province) and read by clerks in Chinese on the case page."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Case
from tests.hubserver import application, province_env
from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator


def test_the_case_page_reads_a_failed_validation_in_chinese(make_hub, store_url):
    env = province_env(make_hub, store_url)
    try:
        body = application(apply_no="510000-20261122-FV1", house_id=None,
                           lessor_id_no="１１０１０５１９８００１０１１２３８")
        answer = env.client.submit("rental_filing", body)
        assert answer.body["code"] == "2002", answer.body
        with env.hub.db.read_session() as s:
            case_no = s.scalars(select(Case.case_no).where(
                Case.apply_no == "510000-20261122-FV1", Case.parent_id.is_(None))).one()
        add_operator(env.hub, "root", ALL_FUNCTIONS)
        c = Client(env.server.url)
        c.login("root")
        masked = c.get(f"/admin/cases/{case_no}").text  # free text masked until revealed
        assert "房屋编号：必须填写" not in masked and "****：****" in masked
        page = c.post(f"/admin/cases/{case_no}/reveal", {"reason": "核对"}).text
        assert "房屋编号：必须填写" in page
        assert "请用半角（英文输入法）数字和字母填写" in page
        # the milestones (what a clerk reads) hold no English; the raw bodies of the
        # exchange further down are the wire's, as sent
        track = page[page.index('<table class="milestones">'):]
        track = track[:track.index("</table>")]
        assert "房屋编号：必须填写" in track and "required" not in track
        assert "half-width" not in track
    finally:
        env.close()

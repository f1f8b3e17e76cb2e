"""Settings and users pages at 1366×768 in Debian's Chromium: every table's header cells
line up with the columns of its first row, nothing scrolls sideways, and a refused change
shows its message in the section of the form (in view after the redirect)."""

from __future__ import annotations

import pytest

from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    PASSWORD,
    add_operator,
    county_peer,
    served,
)
from tests.test_clerk_day import browser, shot  # noqa: F401  (fixture)

#: Header cells whose left edge is off its column by more than this (px) are misaligned.
TOLERANCE = 2
MISALIGNED = """() => {
  const bad = [];
  document.querySelectorAll('main table').forEach((table, t) => {
    const rows = Array.from(table.rows);
    const head = rows.find(r => r.querySelector('th'));
    if (!head) { return; }
    const name = table.id || ('table ' + t);
    const span = r => Array.from(r.cells).reduce((n, c) => n + c.colSpan, 0);
    const width = span(head);
    rows.filter(r => r !== head && !r.querySelector('th')).forEach(r => {
      if (r.cells.length === 1) { return; }  // a "nothing here" row across the table
      if (span(r) !== width || Array.from(r.cells).some(c => c.colSpan > 1)) {
        bad.push(name + ': a row of ' + r.cells.length + ' cells under ' + width + ' headers');
        return;
      }
      Array.from(head.cells).forEach((th, i) => {
        const a = th.getBoundingClientRect(), b = r.cells[i].getBoundingClientRect();
        if (Math.abs(a.left - b.left) > TOL || Math.abs(a.width - b.width) > TOL) {
          bad.push(name + ': ' + th.innerText.trim());
        }
      });
    });
  });
  return Array.from(new Set(bad));
}""".replace("TOL", str(TOLERANCE))


@pytest.mark.parametrize("path", ["/admin/settings", "/admin/users", "/admin/interfaces",
                                  "/admin/manual"])
def test_headers_line_up_at_1366(served, browser, path):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(served.url + "/admin/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.goto(served.url + path)
    shot(page, "layout" + path.replace("/", "-"))
    assert page.evaluate(MISALIGNED) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_refused_change_is_shown_at_the_form(served, browser):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(served.url + "/admin/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.goto(served.url + "/admin/settings")
    page.fill("#division-511702 input[name=name]", "")
    page.click("#division-511702 button[type=submit]")
    message = page.locator("[data-section=divisions]")
    message.wait_for()
    assert "区划名称须为 1–64 个字符" in message.inner_text()
    assert message.is_visible()
    box = message.bounding_box()
    assert box is not None and 0 <= box["y"] < 768  # in view, where the operator looks
    shot(page, "settings-refused")


def test_switching_an_item_off_asks_first(served, browser):  # noqa: F811
    from store.models import InterfaceSwitch

    add_operator(served.hub, "root", ALL_FUNCTIONS)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(served.url + "/admin/login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.goto(served.url + "/admin/settings#items")
    asked: list[str] = []

    def decline(dialog):  # type: ignore[no-untyped-def]
        asked.append(dialog.message)
        dialog.dismiss()
    page.once("dialog", decline)
    page.uncheck("#item-rental_filing input[name=enabled]")
    page.click("#item-rental_filing button[type=submit]")
    assert asked and "确定停用事项" in asked[0]
    with served.hub.transaction() as s:
        assert s.get(InterfaceSwitch, ("interface", "province.in.rental_filing")) is None
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#item-rental_filing button[type=submit]")
    page.wait_for_selector("[data-section=items]")
    with served.hub.transaction() as s:
        assert s.get(InterfaceSwitch, ("interface", "province.in.rental_filing")).enabled is False

"""Mapping the province's person to a local operator (admin/sso.find_operator), on both
stores: by province user id and unit id; disabled and other-unit people refused; nobody
created unless identity.auto_provision says so, and then with no divisions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from admin.identity_config import parse_identity
from admin.people import create_user, set_role_functions
from admin.perms import load_principal
from admin.sso import ProvincePerson, SsoRefused, find_operator, person_of
from store.admin_models import AdminRole, AdminUnit, AdminUser
from tests.test_admin_fixtures import PASSWORD


@pytest.fixture
def hub(make_hub, store_url):
    hub = make_hub(store_url, inbound=[])
    with hub.transaction() as s:
        unit = AdminUnit(name="通川区住建局", province_unit_id="P-TC", division="511702")
        role = AdminRole(name="查看")
        s.add_all([unit, role])
        s.flush()
        set_role_functions(s, role, ("view",))
        create_user(s, "zhang", "张", PASSWORD, unit_id=unit.id, province_user_id="p.zhang")
        off = create_user(s, "wang", "王", PASSWORD, unit_id=unit.id, province_user_id="p.wang")
        off.active = False
    return hub


NONE = parse_identity({"protocol": "cas", "cas": {"server": "http://idp/cas"}}, "h")
AUTO = parse_identity({"protocol": "cas", "cas": {"server": "http://idp/cas"},
                       "auto_provision": {"unit": "通川区住建局", "role": "查看"}}, "h")


def _users(hub) -> int:
    with hub.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(AdminUser)))


@pytest.mark.parametrize(("person", "reason"), [
    (ProvincePerson("p.nobody", None, None), "unknown"),
    (ProvincePerson("p.wang", None, None), "disabled"),
    (ProvincePerson("p.zhang", "P-OTHER", None), "unit"),
])
def test_refusals_create_nothing(hub, person, reason):
    with pytest.raises(SsoRefused) as err, hub.transaction() as s:
        find_operator(s, person, NONE)
    assert err.value.reason == reason and "联系系统管理员" in err.value.message
    assert _users(hub) == 2


def test_known_person_with_or_without_unit(hub):
    for unit in (None, "P-TC"):
        with hub.transaction() as s:
            assert find_operator(s, ProvincePerson("p.zhang", unit, "张"), NONE).username == "zhang"


def test_auto_provision_gives_the_role_and_no_divisions(hub):
    with hub.transaction() as s:
        user = find_operator(s, ProvincePerson("p.new", "P-TC", "新人"), AUTO)
        principal = load_principal(s, user)
    assert principal.functions == frozenset({"view"}) and principal.divisions == frozenset()
    assert _users(hub) == 3
    with hub.transaction() as s:  # the second time it is the same user
        assert find_operator(s, ProvincePerson("p.new", "P-TC", None), AUTO).id == user.id
    with pytest.raises(SsoRefused), hub.transaction() as s:  # another unit: refused
        find_operator(s, ProvincePerson("p.other", "P-XX", None), AUTO)
    with pytest.raises(SsoRefused), hub.transaction() as s:  # no unit at all: refused
        find_operator(s, ProvincePerson("p.anyone", None, None), AUTO)
    assert _users(hub) == 3


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": "x" * 65}, {"sub": ["a"]},
                                    {"sub": "a\nb"}])
def test_claims_without_a_usable_sub_are_refused(claims):
    with pytest.raises(SsoRefused) as err:
        person_of(claims)
    assert err.value.reason == "claims"


@pytest.mark.parametrize("unit_id", ["P-OTHER" + "x" * 70, ["P-OTHER", "P-TC"],
                                     "P-\x00TC", {"id": "P-TC"}, True, [None], [""]])
def test_a_unit_id_sent_but_unreadable_refuses_the_sign_in(hub, unit_id):
    """A unit id the provider sent that is not one printable id (too long, several, a
    control character) was read as no unit id, and the unit check was skipped: a person
    of another unit signed in as zhang (cross-unit)."""
    with pytest.raises(SsoRefused) as err:
        person_of({"sub": "p.zhang", "unit_id": unit_id})
    assert err.value.reason == "unit_claim" and "单位标识" in err.value.message
    # sent empty or not at all: no unit id, the province did not say (as before)
    for claims in ({"sub": "p.zhang"}, {"sub": "p.zhang", "unit_id": ""},
                   {"sub": "p.zhang", "unit_id": "  "}, {"sub": "p.zhang", "unit_id": []}):
        with hub.transaction() as s:
            assert find_operator(s, person_of(claims), NONE).username == "zhang"


def test_a_unit_id_sent_as_a_list_of_one_value_is_that_id(hub):
    """CAS attributes and some OIDC providers send every attribute as a list."""
    with hub.transaction() as s:
        assert find_operator(s, person_of({"sub": "p.zhang", "unit_id": ["P-TC"]}),
                             NONE).username == "zhang"
    with pytest.raises(SsoRefused) as err, hub.transaction() as s:
        find_operator(s, person_of({"sub": "p.zhang", "unit_id": ["P-OTHER"]}), NONE)
    assert err.value.reason == "unit"


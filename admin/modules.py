"""Modules (系统模块) and functions (系统功能) of the admin page: the navigation and what
roles grant (用户-应用-模块-功能).

Both are tables (``admin_modules``, ``admin_functions``), seeded by migration 0004 with
the built-in modules (the pages below) and the built-in functions (``FUNCTIONS``, the
codes the views check); ``ensure_builtins`` adds any built-in one a later version
defines. Operators rename, reorder, enable and disable modules, add their own (which
group link functions), and add link functions (an ``/admin`` path or an https URL)
that roles grant like any other.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from admin.perms import FUNCTIONS, Principal
from store.admin_models import AdminFunction, AdminModule
from store.models import utcnow

log = logging.getLogger("cityhub.admin")


@dataclass(frozen=True)
class Page:
    """A built-in module's page: its endpoint, the function it needs, and the endpoints
    that belong to the module (by prefix: highlighting, and refused while disabled)."""

    endpoint: str
    requires: str
    prefixes: tuple[str, ...]


#: The built-in modules: code → (default name, page), in the seeded order.
BUILTIN_MODULES: dict[str, tuple[str, Page]] = {
    "dashboard": ("首页统计", Page("admin.dashboard", "view",
                                ("admin.dashboard", "admin.stats_download", "admin.ack_alert"))),
    "cases": ("办件查询", Page("admin.cases", "view", ("admin.case",))),
    "deadlines": ("办件时限", Page("admin.deadlines", "view", ("admin.deadlines",))),
    "messages": ("报文与重新提交", Page("admin.messages", "view", ("admin.messages",))),
    "manual": ("人工办理", Page("admin.manual", "view", ("admin.manual",))),
    "fund": ("资金监管", Page("admin.fund", "view", ("admin.fund",))),
    "interfaces": ("接口管理", Page("admin.interfaces", "view",
                                ("admin.interface", "admin.call", "admin.where_would_it_go"))),
    "users": ("用户及权限", Page("admin.users", "manage_users",
                              ("admin.user", "admin.role_save", "admin.unit_save"))),
    "settings": ("系统设置", Page("admin.settings", "manage_settings", ("admin.settings",))),
    "audit": ("审计记录", Page("admin.audit_trail", "view_audit", ("admin.audit_trail",))),
    # added after the seed (0004): ensure_builtins adds it at start-up
    "share": ("数据共享审计", Page("admin.share_audit", "view_audit",
                               ("admin.share_audit", "admin.share_export", "admin.share_rules"))),
}
#: The module a built-in function is seeded in.
BUILTIN_FUNCTION_MODULES: dict[str, str] = {
    "view": "dashboard", "export": "dashboard", "view_personal_data": "cases",
    "resubmit": "messages", "mark_stage": "manual", "manage_interfaces": "interfaces",
    "manage_users": "users", "manage_settings": "settings", "view_audit": "audit",
}
#: This module holds the settings page itself: disabling it would lock everyone out.
LOCKED_MODULE = "settings"

CODE_RE = re.compile(r"[a-z][a-z0-9_]{1,31}")
_PATH_CHARS = r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]"
_PATH_RE = re.compile(rf"/admin(/{_PATH_CHARS}*)?(\?[?{_PATH_CHARS[1:]}*)?")


class CatalogueError(ValueError):
    """A module or function change refused; the message says why (in Chinese)."""


class ModuleDisabled(Exception):
    """A page of a module an operator has disabled."""


def page_of(module_code: str) -> Page | None:
    entry = BUILTIN_MODULES.get(module_code)
    return entry[1] if entry else None


def module_of_endpoint(endpoint: str | None) -> str | None:
    """The built-in module an admin endpoint belongs to (None: sign-in, static, 404)."""
    if not endpoint:
        return None
    for code, (_, page) in BUILTIN_MODULES.items():
        if any(endpoint.startswith(p) for p in page.prefixes):
            return code
    return None


# --------------------------------------------------------------------------- reading


def function_codes(s: Session) -> set[str]:
    """The codes a role may grant: the functions table (the built-in ones always)."""
    return set(s.scalars(select(AdminFunction.code))) | set(FUNCTIONS)


def modules(s: Session) -> list[AdminModule]:
    return list(s.scalars(select(AdminModule).order_by(AdminModule.sort_order,
                                                       AdminModule.code)))


def functions(s: Session) -> list[AdminFunction]:
    return list(s.scalars(select(AdminFunction).order_by(AdminFunction.sort_order,
                                                         AdminFunction.code)))


@dataclass
class NavLink:
    name: str
    url: str
    external: bool = False


@dataclass
class NavModule:
    code: str
    name: str
    endpoint: str | None
    prefixes: tuple[str, ...]
    links: list[NavLink] = field(default_factory=list)

    def on(self, endpoint: str | None) -> bool:
        return endpoint is not None and any(endpoint.startswith(p) for p in self.prefixes)


@dataclass
class Catalogue:
    """What one request needs: the navigation of its principal and disabled modules."""

    nav: list[NavModule]
    disabled: frozenset[str]


def catalogue(s: Session, principal: Principal) -> Catalogue:
    """The principal's navigation: an enabled module shows when they may open its page
    or hold a function in it; link functions they hold show under their module."""
    mods = modules(s)
    by_module: dict[str, list[AdminFunction]] = {}
    for f in functions(s):
        by_module.setdefault(f.module_code, []).append(f)
    nav: list[NavModule] = []
    for m in mods:
        if not m.enabled:
            continue
        page = page_of(m.code) if m.builtin else None
        fns = by_module.get(m.code, [])
        page_ok = page is not None and principal.can(page.requires)
        held = [f for f in fns if principal.can(f.code)]
        links = [NavLink(f.name, f.url or "", external=(f.url or "").startswith("https://"))
                 for f in held if f.kind == "link" and f.url]
        if not (page_ok or held):
            continue
        nav.append(NavModule(m.code, m.name, page.endpoint if page else None,
                             page.prefixes if page else (), links))
    return Catalogue(nav, frozenset(m.code for m in mods if not m.enabled))


def grouped(s: Session) -> list[tuple[str, list[tuple[str, str]]]]:
    """The grantable functions by module (for the roles form): [(module name, [(code,
    name)])], in the navigation's order."""
    names = {m.code: m.name for m in modules(s)}
    groups: dict[str, list[tuple[str, str]]] = {code: [] for code in names}
    listed: set[str] = set()
    for f in functions(s):
        groups.setdefault(f.module_code, []).append((f.code, f.name))
        listed.add(f.code)
    rest = [(code, label) for code, label in FUNCTIONS.items() if code not in listed]
    out = [(names.get(code, code), fns) for code, fns in groups.items() if fns]
    return out + ([("其他", rest)] if rest else [])


# --------------------------------------------------------------------------- seeding


def ensure_builtins(s: Session) -> list[str]:
    """Add the built-in modules and functions the tables lack (a version newer than
    the seed); existing rows, renamed or moved by operators, are left alone."""
    added: list[str] = []
    have = {m.code for m in s.scalars(select(AdminModule))}
    for order, (code, (name, _)) in enumerate(BUILTIN_MODULES.items(), start=1):
        if code not in have:
            s.add(AdminModule(code=code, name=name, sort_order=10 * order, enabled=True,
                              builtin=True, updated_at=utcnow()))
            added.append(code)
    s.flush()
    have_fns = set(s.scalars(select(AdminFunction.code)))
    for i, (code, name) in enumerate(FUNCTIONS.items(), start=1):
        if code not in have_fns:
            s.add(AdminFunction(code=code, name=name, kind="builtin", sort_order=10 * i,
                                module_code=BUILTIN_FUNCTION_MODULES.get(code, "dashboard"),
                                updated_at=utcnow()))
            added.append(code)
    return added


def ensure_builtins_once(db) -> None:  # type: ignore[no-untyped-def]
    """``ensure_builtins`` in its own transaction; another process doing the same at
    the same moment wins harmlessly, and a store not yet migrated is left alone (the
    built-in functions are grantable anyway: ``admin.perms.grantable``)."""
    try:
        with db.session() as s:
            ensure_builtins(s)
    except IntegrityError:
        pass
    except SQLAlchemyError as exc:
        log.warning("built-in modules and functions not checked: %s", exc)


# --------------------------------------------------------------------------- validation


def check_code(code: str, what: str) -> str:
    code = code.strip()
    if not CODE_RE.fullmatch(code):
        raise CatalogueError(f"{what}编码须为 2–32 个小写字母、数字或下划线，并以字母开头")
    return code


def check_name(name: str, what: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise CatalogueError(f"{what}名称须为 1–64 个字符")
    return name


def check_order(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise CatalogueError("顺序须为 0–9999 的整数") from None
    if not 0 <= value <= 9999:
        raise CatalogueError("顺序须为 0–9999 的整数")
    return value


def check_url(url: str) -> str:
    """A link function's target: an internal ``/admin`` path or an https URL."""
    url = url.strip()
    if not url or len(url) > 500:
        raise CatalogueError("链接地址须为 1–500 个字符")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise CatalogueError("链接地址不能包含空白或控制字符")
    if url.startswith("/"):
        if "/../" in url + "/" or not _PATH_RE.fullmatch(url):
            raise CatalogueError("站内链接须为 /admin 下的路径（如 /admin/cases?stage=received）")
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        raise CatalogueError("链接地址格式不正确") from None
    if parts.scheme != "https" or not parts.hostname or "@" in parts.netloc:
        raise CatalogueError("外部链接须以 https:// 开头，且不能包含用户名或密码")
    return url

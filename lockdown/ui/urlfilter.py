"""The URL filter (Safe Exam Browser semantics): block rules first, then allow rules, else blocked.

Pure Python, no Qt: the request interceptor and the navigation checks of the exam page
ask :meth:`UrlFilter.decide` for every URL. Matching, as documented for IT staff in
``docs/exam-config.md``:

- The ``#fragment`` is removed before matching.
- ``regex`` rules: a regular expression searched anywhere in the URL (like Safe Exam
  Browser); anchor it with ``^`` and ``$`` to match the whole URL.
- ``glob`` rules: ``*`` matches any run of characters, ``?`` one character. Like Safe
  Exam Browser, the expression is taken apart and each part is matched against the same
  part of the URL: the scheme (any, when the expression has none), the host, the port
  (the scheme's default, when the expression has none) and, when the expression has a
  path, the path with its query. An expression that names only a host
  (``cdn.example.org``) matches every page on that host; ``*.wikipedia.org`` never
  matches another host's URL that carries ``.wikipedia.org`` in its path or query.
- The start URL's origin (scheme, host, port) is allowed unless a block rule matches.
- ``about:blank`` and ``about:srcdoc`` (empty frames) are always allowed.
- ``file:``, ``data:``, ``javascript:``, ``blob:`` and every other scheme are blocked
  unless an allow rule matches them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from lockdown.config.settings import ConfigError

#: Schemes whose URLs have no host: glob rules for them match the whole URL as written.
OPAQUE_SCHEMES: Final = frozenset({"data", "javascript", "blob", "file", "about", "view-source"})
#: Schemes that are never a web page of the exam: blocked unless a rule allows them.
SPECIAL_SCHEMES: Final = ("file", "data", "javascript", "blob")
_ALWAYS_ALLOWED: Final = frozenset({"about:blank", "about:srcdoc"})
_SCHEME: Final = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


@dataclass(frozen=True)
class Rule:
    """One filter rule, compiled."""

    action: str
    kind: str
    expression: str
    pattern: re.Pattern[str] | Glob

    def matches(self, url: str) -> bool:
        if isinstance(self.pattern, Glob):
            return self.pattern.matches(url)
        return self.pattern.search(url) is not None


@dataclass(frozen=True)
class Decision:
    """The filter's answer for one URL, with the reason (for the journal and the log)."""

    allowed: bool
    reason: str
    rule: str = ""


def strip_fragment(url: str) -> str:
    """``url`` without its ``#fragment``."""
    return url.split("#", 1)[0]


def origin(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower-case; ``""`` for other URLs."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default = 80 if parts.scheme == "http" else 443
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


def _glob(text: str) -> str:
    out = []
    for ch in text:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _part(text: str) -> re.Pattern[str]:
    return re.compile(_glob(text), re.IGNORECASE | re.DOTALL)


_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


@dataclass(frozen=True)
class Glob:
    """A glob rule taken apart like Safe Exam Browser does: each part of a URL on its own.

    The host pattern is matched against the URL's host only, the port against its port
    (no port in the rule: the scheme's default port), the path pattern against the URL's
    path and query; a rule without a path matches every path. So ``*.wikipedia.org`` never matches a URL of another host that
    merely carries ``.wikipedia.org`` in its path or query.
    """

    scheme: re.Pattern[str] | None
    host: re.Pattern[str] | None
    port: re.Pattern[str] | None
    path: re.Pattern[str] | None
    #: opaque schemes (``data:``, ``blob:``…): the whole URL as written
    whole: re.Pattern[str] | None = None

    def matches(self, url: str) -> bool:
        if self.whole is not None:
            return self.whole.fullmatch(url) is not None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        host = parts.hostname
        if not parts.scheme or host is None or parts.scheme.lower() in OPAQUE_SCHEMES:
            return False
        if self.scheme is not None and not self.scheme.fullmatch(parts.scheme):
            return False
        if self.host is not None and not self.host.fullmatch(host):
            return False
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        if self.port is None:
            if port is not None and port != default:
                return False
        elif not self.port.fullmatch(str(port if port is not None else default or "")):
            return False
        if self.path is None:
            return True
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self.path.fullmatch(target) is not None

    def fullmatch(self, url: str) -> bool:
        """Same as :meth:`matches` (the name a compiled regular expression has)."""
        return self.matches(url)


_HOST_PORT: Final = re.compile(r"^(?P<host>\[[^\]]*\]|[^:]*)(?::(?P<port>[0-9*?]*))?$")


def compile_glob(expression: str) -> Glob:
    """A glob rule, compiled part by part (see :class:`Glob`)."""
    expr = strip_fragment(expression.strip())
    scheme_match = _SCHEME.match(expr)
    if scheme_match and scheme_match.group(1).lower() in OPAQUE_SCHEMES:
        return Glob(None, None, None, None, whole=_part(expr))
    scheme: re.Pattern[str] | None = None
    rest = expr
    if "://" in expr:
        raw_scheme, rest = expr.split("://", 1)
        scheme = _part(raw_scheme)
    authority, slash, tail = rest.partition("/")
    authority = authority.rsplit("@", 1)[-1]  # user:password@ never decides
    host_port = _HOST_PORT.match(authority)
    host_text, port_text = (
        (host_port.group("host"), host_port.group("port")) if host_port else (authority, None)
    )
    # only a host (and port): every page on it; else the path (with its query) must match
    path = _part(slash + tail) if slash else None
    return Glob(
        scheme=scheme,
        host=_part(host_text.strip("[]")) if host_text else None,
        port=_part(port_text) if port_text else None,
        path=path,
    )


def compile_whole_url_glob(expression: str) -> re.Pattern[str]:
    """The old matching of a glob against the whole URL as one text (a test control only).

    Used only under the development switch ``LOCKDOWN_DEV_URL_GLOB=whole-url``: the
    positive control of the test that shows ``*.wikipedia.org`` no longer matches
    ``http://other-host/?x=.wikipedia.org``.
    """
    expr = strip_fragment(expression.strip())
    prefix, rest = (
        (_glob(expr.split("://", 1)[0]) + "://", expr.split("://", 1)[1])
        if "://" in expr
        else (r"[a-zA-Z][a-zA-Z0-9+.-]*://", expr)
    )
    suffix = "" if any(sep in rest for sep in "/?") else r"(?:[/?].*)?"
    return re.compile(prefix + _glob(rest) + suffix, re.IGNORECASE | re.DOTALL)


def compile_rule(raw: Mapping[str, Any], *, whole_url_globs: bool = False) -> Rule:
    """Compile one rule of ``browser.url_rules`` (already validated by the schema)."""
    kind = str(raw.get("kind", "glob"))
    pattern: re.Pattern[str] | Glob
    expression = str(raw["expression"])
    if kind == "regex":
        try:
            pattern = re.compile(expression)
        except re.error as exc:
            raise ConfigError(
                f"URL rule {expression!r} is not a valid regular expression ({exc}); "
                "fix browser.url_rules in the exam configuration"
            ) from None
    elif whole_url_globs:
        whole = compile_whole_url_glob(expression)
        pattern = Glob(None, None, None, None, whole=whole)
    else:
        pattern = compile_glob(expression)
    return Rule(action=str(raw["action"]), kind=kind, expression=expression, pattern=pattern)


class UrlFilter:
    """Decides whether a URL may load. Immutable once built (exam settings are frozen)."""

    def __init__(
        self,
        rules: Iterable[Mapping[str, Any]],
        *,
        start_url: str = "",
        allow_start_origin: bool = True,
        enabled: bool = True,
        whole_url_globs: bool = False,
    ) -> None:
        compiled = [
            compile_rule(r, whole_url_globs=whole_url_globs) for r in rules if r.get("active", True)
        ]
        self._block = tuple(r for r in compiled if r.action == "block")
        self._allow = tuple(r for r in compiled if r.action == "allow")
        self._start_origin = origin(start_url) if allow_start_origin else ""
        self.enabled = enabled

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], *, whole_url_globs: bool = False
    ) -> UrlFilter:
        return cls(
            settings["browser.url_rules"],
            start_url=settings["browser.start_url"],
            allow_start_origin=settings["browser.allow_start_origin"],
            enabled=settings["browser.url_filter"],
            whole_url_globs=whole_url_globs,
        )

    def decide(self, url: str) -> Decision:
        target = strip_fragment(url)
        if target in _ALWAYS_ALLOWED:
            return Decision(True, "internal")
        if not self.enabled:
            return Decision(True, "filter off")
        for rule in self._block:
            if rule.matches(target):
                return Decision(False, "block rule", rule.expression)
        for rule in self._allow:
            if rule.matches(target):
                return Decision(True, "allow rule", rule.expression)
        if self._start_origin and origin(target) == self._start_origin:
            return Decision(True, "start origin")
        return Decision(False, "no allow rule")

    def allows(self, url: str) -> bool:
        return self.decide(url).allowed

    def blocked_schemes(self) -> tuple[str, ...]:
        """Special schemes no allow rule opens at all (the page guard stops such links early)."""
        out = []
        for scheme in SPECIAL_SCHEMES:
            opened = any(scheme + ":" in r.expression.lower() for r in self._allow)
            if not self.enabled or opened:
                continue
            out.append(scheme)
        return tuple(out)

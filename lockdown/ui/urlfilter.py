"""The URL filter (Safe Exam Browser semantics): block rules first, then allow rules, else blocked.

Pure Python, no Qt: the request interceptor and the navigation checks of the exam page
ask :meth:`UrlFilter.decide` for every URL. Matching, as documented for IT staff in
``docs/exam-config.md``:

- The ``#fragment`` is removed before matching.
- ``regex`` rules: a regular expression searched anywhere in the URL (like Safe Exam
  Browser); anchor it with ``^`` and ``$`` to match the whole URL.
- ``glob`` rules: ``*`` matches any run of characters, ``?`` one character, the whole
  URL must match. An expression without a scheme (``exam.example.org/*``) matches any
  scheme; an expression that names only a host (``cdn.example.org``) matches every page
  on that host.
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
    pattern: re.Pattern[str]

    def matches(self, url: str) -> bool:
        if self.kind == "regex":
            return self.pattern.search(url) is not None
        return self.pattern.fullmatch(url) is not None


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


def compile_glob(expression: str) -> re.Pattern[str]:
    """The regular expression (to be full-matched against a URL) for a glob rule."""
    expr = strip_fragment(expression.strip())
    scheme_match = _SCHEME.match(expr)
    if scheme_match and scheme_match.group(1).lower() in OPAQUE_SCHEMES:
        return re.compile(_glob(expr), re.IGNORECASE | re.DOTALL)
    if "://" in expr:
        scheme, rest = expr.split("://", 1)
        prefix = _glob(scheme) + "://"
    else:
        rest = expr
        prefix = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
    if not any(sep in rest for sep in "/?"):
        # only a host (and port): every page on it
        return re.compile(prefix + _glob(rest) + r"(?:[/?].*)?", re.IGNORECASE | re.DOTALL)
    return re.compile(prefix + _glob(rest), re.IGNORECASE | re.DOTALL)


def compile_rule(raw: Mapping[str, Any]) -> Rule:
    """Compile one rule of ``browser.url_rules`` (already validated by the schema)."""
    kind = str(raw.get("kind", "glob"))
    expression = str(raw["expression"])
    if kind == "regex":
        try:
            pattern = re.compile(expression)
        except re.error as exc:
            raise ConfigError(
                f"URL rule {expression!r} is not a valid regular expression ({exc}); "
                "fix browser.url_rules in the exam configuration"
            ) from None
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
    ) -> None:
        compiled = [compile_rule(r) for r in rules if r.get("active", True)]
        self._block = tuple(r for r in compiled if r.action == "block")
        self._allow = tuple(r for r in compiled if r.action == "allow")
        self._start_origin = origin(start_url) if allow_start_origin else ""
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> UrlFilter:
        return cls(
            settings["browser.url_rules"],
            start_url=settings["browser.start_url"],
            allow_start_origin=settings["browser.allow_start_origin"],
            enabled=settings["browser.url_filter"],
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

"""An HTTP session that trusts nothing from the candidate's environment.

No proxy, CA bundle or ``.netrc`` from environment variables or files the candidate can
write: the proxy and extra certificate authorities come from the organisation file only
(``network.proxy``, ``network.ca_certificates``). The configuration download
(``lockdown.launch``) and the proctoring service client (``lockdown.session.client``)
both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lockdown.config.settings import ConfigError

if TYPE_CHECKING:
    import requests


def trusted_session(organisation_values: Mapping[str, Any]) -> requests.Session:
    """A ``requests`` session with only the organisation's proxy and certificate authorities.

    Raises:
        ConfigError: the organisation's certificate file cannot be read.
    """
    import ssl

    import certifi
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False  # no proxy, CA bundle or .netrc from the environment
    proxy = str(organisation_values.get("network.proxy", ""))
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    extra = str(organisation_values.get("network.ca_certificates", ""))
    if extra:
        context = ssl.create_default_context(cafile=certifi.where())
        try:
            context.load_verify_locations(cafile=extra)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{extra}: cannot read the organisation's certificate authorities "
                f"({getattr(exc, 'strerror', None) or exc}); ask IT staff to check "
                "network.ca_certificates"
            ) from None

        class _Adapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                kwargs["ssl_context"] = context
                super().init_poolmanager(*args, **kwargs)

        session.mount("https://", _Adapter())
    return session

"""Measurement: which engine setting stops sub-resource redirects and WebRTC from leaving.

For each configuration a child process starts a bare QtWebEngine page (our real
``RequestInterceptor`` and ``UrlFilter``: only the page's own origin allowed) on the
display in ``DISPLAY``. The page has an ``<img>``, a ``<script>`` and a no-cors ``fetch``
that its server 302s to a second, blocked local server (with ``?answer=42``), and an
``RTCPeerConnection`` with a STUN server on a local UDP sink and a TURN-over-TCP server on
a local TCP sink. After a few seconds the child reports what reached the blocked server
and the sinks. Configurations:

* ``plain``: the engine as it comes (the interceptor alone);
* ``udp-policy``: ``--force-webrtc-ip-handling-policy=disable_non_proxied_udp``;
* ``gate``: that policy plus ``--proxy-server`` to Lockdown's network gate (what
  ``lockdown open`` runs with; :mod:`lockdown.ui.netgate`).

Also shown: whether deleting ``RTCPeerConnection`` in every frame at document creation
(a main-world script) survives a fresh ``about:blank`` iframe.

Run (as root the sandbox must be off): ``QTWEBENGINE_DISABLE_SANDBOX=1 DISPLAY=:N
.venv/bin/python bench/measure_engine_paths.py``
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

CONFIGS = ("plain", "udp-policy", "gate")
WAIT_S = 6.0


class Sink:
    """Counts datagrams on a UDP socket and connections on a TCP socket (127.0.0.1)."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.datagrams = 0
        self.connections = 0
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _udp(self) -> None:
        while True:
            self.udp.recvfrom(4096)
            self.datagrams += 1

    def _tcp(self) -> None:
        while True:
            conn, _ = self.tcp.accept()
            self.connections += 1
            conn.close()


def child(mode: str) -> dict[str, Any]:
    from lockdown.ui import netgate
    from tests.support.httpserver import LocalServer, Response

    sink = Sink()
    exam, blocked = LocalServer().start(), LocalServer().start()
    flags = ["--disable-background-networking", "--disable-component-update"]
    gate = None
    if mode in ("udp-policy", "gate"):
        flags.append("--force-webrtc-ip-handling-policy=disable_non_proxied_udp")
    if mode == "gate":
        gate = netgate.start()
        flags += [f"--proxy-server={gate.proxy_url}", "--proxy-bypass-list=<-loopback>"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")
    os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags)
    for kind in ("img", "js", "fetch"):
        exam.routes[f"/r-{kind}"] = Response(
            302, headers={"Location": blocked.url(f"/x-{kind}?answer=42")}
        )
    udp, tcp = sink.udp.getsockname()[1], sink.tcp.getsockname()[1]
    exam.page(
        "/",
        f"""<body><img src="/r-img"><script src="/r-js"></script><script>
fetch('/r-fetch', {{mode: 'no-cors'}}).catch(() => null);
// the main-world deletion took RTCPeerConnection away here; a fresh frame brings it back
const frame = document.createElement('iframe');
document.body.appendChild(frame);
console.log('frame-rtc top:' + typeof window.RTCPeerConnection
  + ',fresh-frame:' + typeof frame.contentWindow.RTCPeerConnection);
const Peer = frame.contentWindow.RTCPeerConnection;
const pc = new Peer({{iceServers: [{{urls: 'stun:127.0.0.1:{udp}'}},
  {{urls: 'turn:127.0.0.1:{tcp}?transport=tcp', username: 'u', credential: 'p'}}]}});
pc.createDataChannel('x');
pc.createOffer().then(offer => pc.setLocalDescription(offer));
</script>""",
    )

    from PySide6.QtCore import QTimer, QUrl
    from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile, QWebEngineScript
    from PySide6.QtWebEngineWidgets import QWebEngineView
    from PySide6.QtWidgets import QApplication

    from lockdown.ui.urlfilter import UrlFilter
    from lockdown.ui.webview import RequestInterceptor

    app = QApplication(sys.argv[:1])
    seen: dict[str, Any] = {"interceptor_blocked": []}

    class Page(QWebEnginePage):
        def javaScriptConsoleMessage(self, *args: Any) -> None:
            if str(args[1]).startswith("frame-rtc "):
                seen["rtc_in_fresh_frame"] = str(args[1]).split()[1]

    url_filter = UrlFilter([], start_url=exam.url("/"))
    interceptor = RequestInterceptor(
        url_filter, lambda b: seen["interceptor_blocked"].append(b.url), gate=gate
    )
    profile = QWebEngineProfile()
    profile.setUrlRequestInterceptor(interceptor)
    page = Page(profile)
    delete = QWebEngineScript()
    delete.setName("delete-rtc")
    delete.setWorldId(QWebEngineScript.ScriptWorldId.MainWorld)
    delete.setInjectionPoint(QWebEngineScript.InjectionPoint.DocumentCreation)
    delete.setRunsOnSubFrames(True)
    delete.setSourceCode("delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;")
    page.scripts().insert(delete)
    view = QWebEngineView()
    view.setPage(page)
    view.show()
    started = time.monotonic()
    page.load(QUrl(exam.url("/")))
    QTimer.singleShot(int(WAIT_S * 1000), app.quit)
    app.exec()
    result = {
        "config": mode,
        "blocked_server_got": sorted(r.path for r in blocked.requests),
        "interceptor_said_blocked": len(seen["interceptor_blocked"]),
        "stun_udp_datagrams": sink.datagrams,
        "turn_tcp_connections": sink.connections,
        "rtc_in_fresh_frame": seen.get("rtc_in_fresh_frame", "?"),
        "seconds": round(time.monotonic() - started, 1),
    }
    view.close()
    del page
    return result


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2])), flush=True)
        os._exit(0)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root, "QT_QPA_PLATFORM": "xcb"}
    print(f"{'config':<12} {'blocked server got':<44} {'STUN/UDP':>8} {'TURN/TCP':>8}")
    for mode in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        got = ", ".join(row["blocked_server_got"]) or "nothing"
        print(
            f"{mode:<12} {got:<44} {row['stun_udp_datagrams']:>8} {row['turn_tcp_connections']:>8}"
            f"   (interceptor blocked {row['interceptor_said_blocked']};"
            f" after deleting RTCPeerConnection: {row['rtc_in_fresh_frame']})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

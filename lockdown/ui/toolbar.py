"""The kiosk's slim toolbar: clock, time remaining, battery, network, reload, zoom, quit.

Each item is switched by its ``kiosk.toolbar.*`` setting; reload also needs
``browser.allow_reload`` and quit needs ``quit.allow``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from lockdown.texts import text

HEIGHT = 34


def format_remaining(seconds: float) -> str:
    """``H:MM:SS`` (or ``MM:SS`` under an hour) of the seconds left, never negative."""
    total = max(0, int(seconds + 0.999))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def network_up() -> bool:
    """True when any interface but loopback is up."""
    try:
        stats = psutil.net_if_stats()
    except OSError:
        return False
    return any(st.isup for name, st in stats.items() if name != "lo" and not name.startswith("lo"))


class Toolbar(QWidget):
    """The toolbar; buttons call the callbacks given, labels update once a second."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        on_reload: Callable[[], None],
        on_zoom: Callable[[float | None], None],
        on_quit: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("lockdown-toolbar")
        self.setFixedHeight(HEIGHT)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            "#lockdown-toolbar { background: #263238; }"
            "QLabel { color: #eceff1; padding: 0 8px; }"
            "QPushButton { color: #eceff1; background: #37474f; border: none;"
            " padding: 4px 10px; border-radius: 3px; }"
            "QPushButton:hover { background: #455a64; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.setSpacing(6)
        self.buttons: dict[str, QPushButton] = {}
        self.labels: dict[str, QLabel] = {}
        t = settings
        self._duration = float(t["kiosk.exam_duration"])
        self._started = time.monotonic()

        def button(key: str, label: str, slot: Callable[[], None]) -> None:
            btn = QPushButton(label, self)
            btn.setObjectName(key)
            btn.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            btn.clicked.connect(slot)
            layout.addWidget(btn)
            self.buttons[key] = btn

        if t["kiosk.toolbar.reload"] and t["browser.allow_reload"]:
            button("reload", text("toolbar.reload"), on_reload)
        if t["kiosk.toolbar.zoom"]:
            button("zoom_out", "−", lambda: on_zoom(-0.1))
            button("zoom_reset", "100%", lambda: on_zoom(None))
            button("zoom_in", "+", lambda: on_zoom(0.1))
            self.buttons["zoom_out"].setToolTip(text("toolbar.zoom_out"))
            self.buttons["zoom_reset"].setToolTip(text("toolbar.zoom_reset"))
            self.buttons["zoom_in"].setToolTip(text("toolbar.zoom_in"))
        layout.addStretch(1)
        self.message = QLabel("", self)
        self.message.setObjectName("message")
        layout.addWidget(self.message)
        layout.addStretch(1)
        for key, on in (
            ("time_remaining", t["kiosk.toolbar.time_remaining"] and self._duration > 0),
            ("network", t["kiosk.toolbar.network"]),
            ("battery", t["kiosk.toolbar.battery"]),
            ("clock", t["kiosk.toolbar.clock"]),
        ):
            if on:
                label = QLabel("", self)
                label.setObjectName(key)
                layout.addWidget(label)
                self.labels[key] = label
        if t["kiosk.toolbar.quit"] and t["quit.allow"]:
            button("quit", text("toolbar.quit"), on_quit)
        self._message_timer = QTimer(self)
        self._message_timer.setSingleShot(True)
        self._message_timer.timeout.connect(lambda: self.message.setText(""))
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(1000)
        self.refresh()

    def flash(self, message: str, seconds: float = 6.0) -> None:
        """Show a short message in the middle of the toolbar."""
        self.message.setText(message)
        self._message_timer.start(int(seconds * 1000))

    def remaining(self) -> float:
        return self._duration - (time.monotonic() - self._started)

    def refresh(self) -> None:
        if "clock" in self.labels:
            self.labels["clock"].setText(time.strftime("%H:%M"))
        if "time_remaining" in self.labels:
            left = self.remaining()
            self.labels["time_remaining"].setText(
                text("toolbar.time_remaining", time=format_remaining(left))
                if left > 0
                else text("toolbar.time_over")
            )
        if "network" in self.labels:
            self.labels["network"].setText(
                text("toolbar.network_up" if network_up() else "toolbar.network_down")
            )
        if "battery" in self.labels:
            battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
            label = self.labels["battery"]
            label.setVisible(battery is not None)
            if battery is not None:
                key = "toolbar.battery_charging" if battery.power_plugged else "toolbar.battery"
                label.setText(text(key, percent=round(battery.percent)))

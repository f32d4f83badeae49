"""In-kiosk pages shown instead of the exam: a blocked address, an unreachable page.

They are widgets, not web pages: nothing the exam's web content can script or fake.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from lockdown.texts import text


def _centred_page(
    page: QWidget, name: str, style: str, labels: tuple[str, ...]
) -> tuple[QVBoxLayout, dict[str, QLabel]]:
    """Style ``page`` and give it centred, word-wrapped plain-text labels, in order."""
    page.setObjectName(name)
    page.setStyleSheet(f"#{name} {{ background: #fafafa; }}" + style)
    page.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
    layout = QVBoxLayout(page)
    layout.setAlignment(Qt.AlignmentFlag.AlignCenter)
    layout.setSpacing(14)
    made: dict[str, QLabel] = {}
    for label_name in labels:
        label = QLabel(page)
        label.setObjectName(label_name)
        label.setWordWrap(True)
        label.setFixedWidth(820)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(label, 0, Qt.AlignmentFlag.AlignHCenter)
        made[label_name] = label
    return layout, made


class NoticePage(QWidget):
    """Title, explanation, the address concerned, a hint and one button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout, labels = _centred_page(
            self,
            "lockdown-notice",
            "QLabel#title { font-size: 24px; font-weight: bold; color: #b71c1c; }"
            "QLabel#body, QLabel#hint { font-size: 15px; color: #212121; }"
            "QLabel#address { font-family: monospace; font-size: 14px; color: #37474f;"
            " background: #eceff1; padding: 8px; }"
            "QPushButton { font-size: 16px; padding: 8px 24px; }",
            ("title", "body", "address", "hint"),
        )
        self.title, self.body = labels["title"], labels["body"]
        self.address, self.hint = labels["address"], labels["hint"]
        self.address.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.button = QPushButton(self)
        self.button.setObjectName("action")
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignHCenter)
        self._action: Callable[[], None] | None = None
        self.button.clicked.connect(self._clicked)
        self.kind = ""

    def _clicked(self) -> None:
        if self._action is not None:
            self._action()

    def show_blocked(self, url: str, action: Callable[[], None], *, popup: bool = False) -> None:
        self._fill(
            "blocked",
            text("blocked.title"),
            text("blocked.popup" if popup else "blocked.body"),
            url,
            text("blocked.hint"),
            text("blocked.back"),
            action,
        )

    def show_error(self, url: str, action: Callable[[], None]) -> None:
        self._fill(
            "error",
            text("error.title"),
            text("error.body"),
            url,
            text("error.hint"),
            text("error.retry"),
            action,
        )

    def _fill(  # noqa: PLR0917 (one argument per label)
        self,
        kind: str,
        title: str,
        body: str,
        url: str,
        hint: str,
        button: str,
        action: Callable[[], None],
    ) -> None:
        self.kind = kind
        self.title.setText(title)
        self.body.setText(body)
        self.address.setText(url if len(url) <= 300 else url[:297] + "…")
        self.hint.setText(hint)
        self.button.setText(button)
        self._action = action


class ProgressPage(QWidget):
    """What happens while the exam starts or ends: a title and one line per step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        _, labels = _centred_page(
            self,
            "lockdown-progress",
            "QLabel#title { font-size: 24px; font-weight: bold; color: #0d47a1; }"
            "QLabel#step { font-size: 17px; color: #212121; }",
            ("title", "step"),
        )
        self.title, self.step = labels["title"], labels["step"]
        self.title.setText(text("session.ending_title"))
        self.setAccessibleName(text("session.ending_title"))

    def show_title(self, title: str) -> None:
        self.title.setText(title)
        self.setAccessibleName(title)

    def show_step(self, message: str) -> None:
        self.step.setText(message)
        self.step.setAccessibleName(message)

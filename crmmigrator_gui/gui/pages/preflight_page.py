"""Step 5, Pre-flight: what would block or degrade the load, found before anything is written.

The engine's ``preflight`` runs on a worker (progress, cancel) each time the page opens or the
consultant presses Run. Findings are grouped by severity, then by code; double-clicking one that
names a field goes back to the Map page with that row selected. Next stays disabled while any
blocking finding remains: fix it, then run pre-flight again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt, Slot
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.plan.preflight import preflight
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback, ProgressEvent
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
EXPAND_UP_TO = 12  # a code group with at most this many findings opens by itself

#: Severity key → (group title, text colour, background).
SEVERITIES: dict[str, tuple[str, str, str]] = {
    "blocking": ("Blocking", "#8a1c12", "#fdecea"),
    "warning": ("Warnings", "#6b4a00", "#fff6e0"),
    "info": ("Info", "#1d3f6e", "#e8f0fb"),
}


def _preflight_operation(project: Project, progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
    return preflight(project, progress=progress, cancel=cancel)


def severity_of(finding: dict[str, Any]) -> str:
    """``blocking`` when the engine marks the finding so, else its severity (unknown ones count as info)."""
    if finding.get("blocking") is True or finding.get("severity") == "blocking":
        return "blocking"
    severity = str(finding.get("severity") or "info")
    return severity if severity in SEVERITIES else "info"


_ACRONYMS = {"api": "API", "id": "ID", "po": "PO", "url": "URL", "sla": "SLA"}


def code_title(code: str) -> str:
    """``UNMATCHED_OWNER`` → ``Unmatched owner``; ``API_BUDGET`` → ``API budget``."""
    words = [_ACRONYMS.get(word, word) for word in code.lower().split("_") if word]
    if not words:
        return code
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


@dataclass
class _Node:
    """One tree row: a severity group, a code group under it, or a finding."""

    kind: str  # severity | code | finding
    key: str
    parent: int  # node id of the parent, -1 for top level
    row: int
    finding: dict[str, Any] | None = None
    children: list[int] = field(default_factory=list)
    count: int = 0


class FindingsModel(QAbstractItemModel):
    """Pre-flight findings as a tree: severity → code → finding (with counts on the groups).

    A finding's own row has the columns Object, Field, Source id and Message; a group row's text is
    meant to span the row (the view sets ``setFirstColumnSpanned`` on groups).
    """

    OBJECT, FIELD, SOURCE_ID, MESSAGE = range(4)
    HEADERS = ("Object", "Field", "Source id", "Message")

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._nodes: list[_Node] = []
        self._top: list[int] = []

    def set_findings(self, findings: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._nodes, self._top = [], []
        groups: dict[str, dict[str, list[dict[str, Any]]]] = {key: {} for key in SEVERITIES}
        for finding in findings:
            groups[severity_of(finding)].setdefault(str(finding.get("code") or "OTHER"), []).append(finding)
        for severity, codes in groups.items():
            if not codes:
                continue
            top = self._add(_Node("severity", severity, -1, len(self._top)))
            self._top.append(top)
            for code, items in sorted(codes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                group = self._add(_Node("code", code, top, len(self._nodes[top].children), count=len(items)))
                self._nodes[top].children.append(group)
                self._nodes[top].count += len(items)
                for item in items:
                    leaf = self._add(_Node("finding", code, group, len(self._nodes[group].children), finding=item))
                    self._nodes[group].children.append(leaf)
        self.endResetModel()

    def _add(self, node: _Node) -> int:
        self._nodes.append(node)
        return len(self._nodes) - 1

    def node(self, index: Index) -> _Node | None:
        return self._nodes[index.internalId()] if index.isValid() else None

    def finding(self, index: Index) -> dict[str, Any] | None:
        node = self.node(index)
        return node.finding if node is not None else None

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys(SEVERITIES, 0)
        for top in self._top:
            result[self._nodes[top].key] = self._nodes[top].count
        return result

    def group_index(self, severity: str, code: str | None = None) -> QModelIndex:
        for top in self._top:
            node = self._nodes[top]
            if node.key != severity:
                continue
            if code is None:
                return self.createIndex(node.row, 0, top)
            for child in node.children:
                if self._nodes[child].key == code:
                    return self.createIndex(self._nodes[child].row, 0, child)
        return QModelIndex()

    # ------------------------------------------------------------------ structure
    def index(self, row: int, column: int, parent: Index = _ROOT) -> QModelIndex:
        children = self._nodes[parent.internalId()].children if parent.isValid() else self._top
        if parent.isValid() and parent.column() != 0:
            return QModelIndex()
        if not 0 <= row < len(children) or not 0 <= column < len(self.HEADERS):
            return QModelIndex()
        return self.createIndex(row, column, children[row])

    def parent(self, index: Index = _ROOT) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        parent = self._nodes[index.internalId()].parent
        if parent < 0:
            return QModelIndex()
        return self.createIndex(self._nodes[parent].row, 0, parent)

    def rowCount(self, parent: Index = _ROOT) -> int:
        if not parent.isValid():
            return len(self._top)
        if parent.column() != 0:
            return 0
        return len(self._nodes[parent.internalId()].children)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # ------------------------------------------------------------------ presentation
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        node = self.node(index)
        if node is None:
            return None
        if role == Qt.ItemDataRole.UserRole:
            return node.finding
        if node.kind == "finding":
            return self._finding_data(node, index.column(), role)
        if index.column() != 0:
            return None
        severity = node.key if node.kind == "severity" else self._nodes[node.parent].key
        _title, colour, background = SEVERITIES[severity]
        if role == Qt.ItemDataRole.DisplayRole:
            if node.kind == "severity":
                return f"{SEVERITIES[node.key][0]} · {node.count:,}"
            return f"{code_title(node.key)} ({node.key}) · {node.count:,}"
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor(colour))
        if role == Qt.ItemDataRole.BackgroundRole and node.kind == "severity":
            return QBrush(QColor(background))
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        return None

    def _finding_data(self, node: _Node, column: int, role: int) -> Any:
        finding = node.finding or {}
        key = ("object", "field", "source_id", "message")[column]
        value = finding.get(key)
        text = "" if value is None else str(value)
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = str(finding.get("message") or "")
            if finding.get("field"):
                tip += "\nDouble-click to open this field on the Map page."
            return tip
        return None


def _card(title: str) -> tuple[QFrame, QLabel, QLabel]:
    frame = QFrame()
    frame.setObjectName("card")
    frame.setStyleSheet("QFrame#card { border:1px solid palette(mid); border-radius:6px; background:palette(base); }")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(12, 8, 12, 8)
    layout.setSpacing(2)
    caption = hint(QLabel(title.upper()))
    font = caption.font()
    font.setPointSizeF(font.pointSizeF() * 0.85)
    font.setBold(True)
    caption.setFont(font)
    headline = QLabel("—")
    big = headline.font()
    big.setPointSizeF(big.pointSizeF() * 1.35)
    big.setBold(True)
    headline.setFont(big)
    body = QLabel("")
    body.setTextFormat(Qt.TextFormat.PlainText)  # engine text, never markup
    body.setWordWrap(True)
    body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    layout.addWidget(caption)
    layout.addWidget(headline)
    layout.addWidget(body, 1)
    return frame, headline, body


def _duration(minutes: Any) -> str:
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        return "—"
    if value < 1:
        return "under a minute"
    if value < 90:
        return f"about {value:.0f} min"
    return f"about {value / 60:.1f} h"


class PreflightPage(BasePage):
    """Run pre-flight, read its findings, jump to a field, and gate the load on blocking findings."""

    def __init__(self) -> None:
        super().__init__(
            "Pre-flight",
            "Before anything is written, check owners, required values, lengths, e-mails and phones, duplicates, "
            "orphans, unmapped choices, attachment sizes, edition limits and the API budget.",
        )
        self.result: dict[str, Any] | None = None

        self.readiness_card, self.readiness, self.readiness_body = _card("Readiness")
        self.grade_card, self.grade, self.grade_body = _card("Complexity grade")
        self.estimate_card, self.estimate, self.estimate_body = _card("Estimate")
        cards = QHBoxLayout()
        cards.setSpacing(10)
        for card in (self.readiness_card, self.grade_card, self.estimate_card):
            cards.addWidget(card, 1)
        self.cards_host = QWidget()
        self.cards_host.setLayout(cards)
        cards.setContentsMargins(0, 0, 0, 0)

        self.run_button = QPushButton("Run pre-flight")
        self.run_button.setMinimumWidth(130)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(14)
        self.progress.setRange(0, 1)
        self.progress.setVisible(False)
        self.status = hint(QLabel("Pre-flight runs each time you open this step."))
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addSpacing(8)
        run_row.addWidget(self.status, 1)
        run_row.addWidget(self.progress, 1)

        self.model = FindingsModel(self)
        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setAlternatingRowColors(True)
        self.view.setUniformRowHeights(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setIndentation(18)
        header = self.view.header()
        header.setStretchLastSection(True)
        for column, width in ((FindingsModel.OBJECT, 150), (FindingsModel.FIELD, 150), (FindingsModel.SOURCE_ID, 130)):
            header.resizeSection(column, width)
        header.setSectionResizeMode(FindingsModel.MESSAGE, QHeaderView.ResizeMode.Stretch)
        self.jump_hint = hint(QLabel("Double-click a finding with a field to open that row on the Map page."))

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        set_banner(self.banner, "")
        # Record-level blockers (a bad date on one booking) fail only their records; the load goes on and
        # `load` again retries them after the fix. The consultant may accept that knowingly, and it is audited.
        self.accept_failures = QCheckBox()
        self.accept_failures.setVisible(False)
        self.accept_failures.toggled.connect(self._acknowledge)

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(self.cards_host)
        layout.addLayout(run_row)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.jump_hint)
        layout.addWidget(self.accept_failures)
        layout.addWidget(self.banner)

        self.run_button.clicked.connect(self.run_preflight)
        self.cancel_button.clicked.connect(self.cancel)
        self.view.doubleClicked.connect(self.open_finding)
        self._show_result(None)

    # ------------------------------------------------------------------ running
    def run_preflight(self) -> None:
        if self.runner.busy or self.state.project_path is None:
            return
        self.result = None
        set_banner(self.banner, "")
        self.status.setText("Checking the staged data against the map and the destination…")
        self.progress.setRange(0, 0)
        self.runner.start(
            self.state.project_path,
            _preflight_operation,
            name="pre-flight",
            on_progress=self._progress,
            on_finished=self._finished,
            on_failed=self._failed,
            on_cancelled=self._cancelled,
        )

    def cancel(self) -> None:
        self.runner.cancel()
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling…")

    @Slot(object)
    def _progress(self, event: ProgressEvent) -> None:
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(min(event.done, event.total))
        what = event.message or event.obj or event.step
        self.status.setText(f"Checking {what}…" if what else "Checking…")

    @Slot(object)
    def _finished(self, result: dict[str, Any]) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self._show_result(result)
        self.completeChanged.emit()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("Pre-flight did not finish.")
        set_banner(self.banner, message, "error")

    @Slot()
    def _cancelled(self) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("Pre-flight cancelled; press Run pre-flight to check again.")

    def busy_changed(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)

    # ------------------------------------------------------------------ showing
    def _show_result(self, result: dict[str, Any] | None) -> None:
        self.result = result
        findings = list((result or {}).get("findings") or [])
        self.model.set_findings(findings)
        for row in range(self.model.rowCount()):
            top = self.model.index(row, 0)
            self.view.setFirstColumnSpanned(row, QModelIndex(), True)
            for child in range(self.model.rowCount(top)):
                self.view.setFirstColumnSpanned(child, top, True)
            self.view.expand(top)
        for row in range(self.model.rowCount()):  # open the blocking codes, and any short list
            top = self.model.index(row, 0)
            blocking = self.model.node(top).key == "blocking"  # type: ignore[union-attr]
            for child in range(self.model.rowCount(top)):
                code = self.model.index(child, 0, top)
                if blocking or self.model.rowCount(code) <= EXPAND_UP_TO:
                    self.view.expand(code)
        counts = self.model.counts()
        records = self.record_level_blockers()
        self.accept_failures.blockSignals(True)
        self.accept_failures.setChecked(False)
        self.accept_failures.blockSignals(False)
        self.accept_failures.setVisible(bool(records))
        self.accept_failures.setText(
            f"Load anyway: {len(records):,} record(s) with blocking problems will fail and be listed; "
            "fix them later and run the load again (it retries only those)"
        )
        self._show_readiness(result, counts)
        self._show_grade((result or {}).get("grade"))
        self._show_estimate((result or {}).get("estimate"))
        if result is None:
            return
        total = sum(counts.values())
        self.status.setText(
            f"{total:,} finding(s): {counts['blocking']:,} blocking, {counts['warning']:,} warning(s), "
            f"{counts['info']:,} for information."
        )
        if counts["blocking"]:
            set_banner(
                self.banner,
                f"{counts['blocking']:,} blocking finding(s) stop the load. Fix them (double-click one to open its "
                "field on the Map page, or correct the export and import it again), then run pre-flight again"
                + (" — or tick “Load anyway” to load the rest now." if records else "."),
                "error",
            )
        elif counts["warning"]:
            set_banner(
                self.banner,
                "Nothing blocks the load. Read the warnings with the customer: those records load as described.",
                "warning",
            )
        else:
            set_banner(self.banner, "Nothing blocks the load.", "success")

    def _show_readiness(self, result: dict[str, Any] | None, counts: dict[str, int]) -> None:
        if result is None:
            self.readiness.setText("Not checked yet")
            self.readiness.setStyleSheet("")
            self.readiness_body.setText("Pre-flight has not run on the current map.")
            return
        if counts["blocking"]:
            self.readiness.setText(f"✖ {counts['blocking']:,} blocking")
            self.readiness.setStyleSheet("color:#8a1c12;")
        else:
            self.readiness.setText("✔ Ready to load")
            self.readiness.setStyleSheet("color:#1c5e33;")
        self.readiness_body.setText(f"{counts['warning']:,} warning(s) · {counts['info']:,} for information")

    def _show_grade(self, grade: Any) -> None:
        self.grade_card.setVisible(isinstance(grade, dict))
        if not isinstance(grade, dict):
            return
        self.grade.setText(str(grade.get("level") or "—"))
        reasons = [str(r) for r in grade.get("reasons") or []]
        self.grade_body.setText("\n".join(f"• {r}" for r in reasons[:5]))
        self.grade_body.setToolTip("\n".join(reasons))

    def _show_estimate(self, estimate: Any) -> None:
        self.estimate_card.setVisible(isinstance(estimate, dict))
        if not isinstance(estimate, dict):
            return
        days = estimate.get("timeline_days")
        if isinstance(days, list | tuple) and len(days) == 2:
            timeline = f"{days[0]}–{days[1]} days" if days[0] != days[1] else f"{days[0]} days"
        else:
            timeline = f"{days} days" if days is not None else "—"
        self.estimate.setText(timeline)
        lines = []
        if estimate.get("requests") is not None:
            lines.append(f"{int(estimate['requests']):,} API requests")
        if estimate.get("load_minutes") is not None:
            lines.append(f"load {_duration(estimate['load_minutes'])}")
        budget = estimate.get("api_budget")
        if isinstance(budget, dict) and budget.get("share") is not None:
            try:
                lines.append(f"{float(budget['share']):.0%} of the API budget")
            except (TypeError, ValueError):
                pass
        basis = estimate.get("basis")
        if isinstance(basis, dict):
            lines += [f"{key}: {value}" for key, value in basis.items() if key in ("rate", "timeline")]
            basis = "\n".join(f"{key}: {value}" for key, value in basis.items())
        self.estimate_body.setText("\n".join(lines))
        self.estimate_body.setToolTip(str(basis or ""))

    # ------------------------------------------------------------------ jump to the map
    def open_finding(self, index: QModelIndex) -> bool:
        """Double-click: go back to the Map page with the finding's field selected."""
        finding = self.model.finding(index)
        if not finding or not finding.get("object") or not finding.get("field"):
            return False
        wizard = self.migrator()
        wizard.back()
        if wizard.currentPage() is not wizard.map_page:
            return False
        return wizard.map_page.focus_field(
            str(finding["object"]), str(finding["field"]), str(finding.get("message") or "")
        )

    # ------------------------------------------------------------------ QWizardPage
    def initializePage(self) -> None:
        self._show_result(None)
        self.run_preflight()

    def isComplete(self) -> bool:
        if self.runner.busy or self.result is None:
            return False
        if max(int(self.result.get("blocking") or 0), self.model.counts()["blocking"]) == 0:
            return True
        return self.accept_failures.isChecked() and bool(self.record_level_blockers())

    def _blocking_findings(self) -> list[dict[str, Any]]:
        return [
            f
            for f in (self.result or {}).get("findings") or []
            if f.get("blocking") or (f.get("blocking") is None and f.get("severity") == "blocking")
        ]

    def record_level_blockers(self) -> set[tuple[str, str]]:
        """(object, source id) of the records that blocking findings name — empty when any blocker is about the
        project (an unconfirmed map, missing schema, edition limits): those can never be waved through."""
        blocking = self._blocking_findings()
        if not blocking or any(not f.get("source_id") for f in blocking):
            return set()
        return {(str(f.get("object") or ""), str(f["source_id"])) for f in blocking}

    @Slot(bool)
    def _acknowledge(self, checked: bool) -> None:
        project = self.state.project
        if checked and project is not None:
            records = sorted(self.record_level_blockers())
            with project.step(
                "preflight accepted with failures",
                {"records": len(records), "codes": sorted({f["code"] for f in self._blocking_findings()})},
            ):
                pass
        self.completeChanged.emit()

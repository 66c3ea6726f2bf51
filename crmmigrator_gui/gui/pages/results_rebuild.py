"""The Rebuild reference tab: what cannot migrate as data (the source's definitions and the playbook's items), each
with its recommended rebuild path and effort.

Everything shown comes from the plain dict the engine built on a worker (``rebuild_package``); this module only
presents it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.report.rebuild import EFFORT_RULE, KIND_TITLES
from crmmigrator_gui.gui.models import Column, Index, RecordsModel
from crmmigrator_gui.gui.pages.base import hint
from crmmigrator_gui.gui.pages.results_reconcile import fit_columns, moment_text, table_view

REBUILD_SUMMARY_COLUMNS = [
    Column("kind_text", "Kind"),
    Column("count", "Items", numeric=True),
    Column("active", "Active", numeric=True),
    Column("S", "Effort S", numeric=True),
    Column("M", "Effort M", numeric=True),
    Column("L", "Effort L", numeric=True),
]
REBUILD_ITEM_COLUMNS = [
    Column("kind_text", "Kind"),
    Column("name", "Item"),
    Column("object_text", "Applies to"),
    Column("status", "Status"),
    Column("effort", "Effort"),
    Column("rebuild_path", "Recommended rebuild"),
]
#: The playbook's items: configuration no export or API carries (the source's own definitions have their kind).
PLAYBOOK_KIND = "Not exported"


def _details_text(details: dict[str, Any]) -> str:
    """A definition's details on one line; trigger code is counted, not shown (it is in the package's JSON)."""
    parts = []
    for key, value in details.items():
        if key == "body":
            value = f"{len(str(value).splitlines())} lines of code (see the JSON)"
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


def rebuild_item_rows(package: dict[str, Any]) -> list[dict[str, Any]]:
    """The source's definitions (by kind, with their rebuild path and effort), then the playbook's items."""
    rows = []
    for entry in package.get("inventory") or []:
        obj, dest = entry.get("object"), entry.get("destination_entity")
        active = entry.get("active")
        rows.append(
            {
                **entry,
                "kind_text": KIND_TITLES.get(entry["kind"], entry["kind"].replace("_", " ")),
                "object_text": f"{obj} → {dest}" if obj and dest else (obj or ""),
                "status": "" if active is None else ("active" if active else "inactive"),
                "notes": _details_text(entry.get("details") or {}),
            }
        )
    for item in package.get("rebuild") or []:
        rows.append(
            {
                "kind": "playbook",
                "kind_text": PLAYBOOK_KIND,
                "name": item.get("item") or "",
                "object_text": item.get("destination") or "",
                "status": "",
                "effort": "",
                "rebuild_path": item.get("rebuild_path") or item.get("destination") or "",
                "notes": item.get("why") or "",
            }
        )
    return rows


def rebuild_summary_rows(package: dict[str, Any]) -> list[dict[str, Any]]:
    """Counts per kind (the package's summary), plus the playbook's items, which have no effort hint."""
    rows = [
        {"kind": kind, "kind_text": KIND_TITLES.get(kind, kind.replace("_", " ")), **counts}
        for kind, counts in (package.get("summary") or {}).items()
    ]
    if package.get("rebuild"):
        rows.append({"kind": "playbook", "kind_text": PLAYBOOK_KIND, "count": len(package["rebuild"])})
    return rows


def definitions_note(package: dict[str, Any]) -> tuple[str, bool]:
    """What the package can say about the source's definitions, and whether the consultant should act on it."""
    status = package.get("definitions") or {}
    kind = status.get("status")
    if kind == "read":
        count = len(package.get("inventory") or [])
        text = f"Read from {status.get('platform')} on {moment_text(status.get('read_at'))}: {count:,} definition(s)."
        extra = [f"Not read: {w}" for w in status.get("warnings") or []]
        extra += [f"Not exposed: {n}" for n in status.get("not_exposed") or []]
        return " ".join([text, *extra]), bool(status.get("warnings"))
    if kind == "not_exposed":
        return f"The source exposes no definitions: {status.get('why')}", False
    return f"The source's definitions are not read yet: {status.get('why')}.", True


class RebuildView(QWidget):
    """A read-only preview of the rebuild reference package: counts per kind, then every item with its path.

    Built from ``rebuild_package`` on the worker (offline); the files themselves are written by the page's
    "Rebuild package…" button, which may read the source's definitions first.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.package: dict[str, Any] | None = None
        self.source_note = QLabel("")
        self.source_note.setWordWrap(True)
        self.source_note.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.effort_note = hint(QLabel(f"Effort hint — {EFFORT_RULE}"))
        self.effort_note.setWordWrap(True)
        self.effort_note.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.summary_model = RecordsModel(REBUILD_SUMMARY_COLUMNS, self)
        self.summary_view = table_view(self.summary_model, stretch_last=False)
        self.summary_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.summary_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # As small as its counts: the notes sit beside it, and the items below get the height.
        self.summary_view.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.summary_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.summary_view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.summary_view.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.items_model = RecordsModel(REBUILD_ITEM_COLUMNS, self)
        self.items_view = table_view(self.items_model)
        # The recommended rebuild is what the admin reads: wrapped in full, never cut off.
        self.items_view.setWordWrap(True)
        self.items_view.setTextElideMode(Qt.TextElideMode.ElideNone)
        fit_columns(self.items_view, [150, 210, 140, 62, 50])
        rows = self.items_view.verticalHeader()
        rows.setMinimumSectionSize(rows.defaultSectionSize())  # wrapped rows grow; short ones keep the grid's height
        # Why an item is listed, or what the source says about it, can run long: shown for the selected item.
        self.item_detail = QLabel("")
        self.item_detail.setWordWrap(True)
        self.item_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.item_detail.setTextFormat(Qt.TextFormat.PlainText)
        self.items_view.selectionModel().currentRowChanged.connect(self._show_item)
        # Wrapped rows are measured at the column widths they end up with (the tab is laid out after the data).
        self._fit_rows = QTimer(self)
        self._fit_rows.setSingleShot(True)
        self._fit_rows.timeout.connect(self.items_view.resizeRowsToContents)
        self.items_view.horizontalHeader().sectionResized.connect(lambda *_: self._fit_rows.start(0))

        notes = QVBoxLayout()
        notes.addWidget(self.source_note)
        notes.addWidget(self.effort_note)
        notes.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(self.summary_view, 0, Qt.AlignmentFlag.AlignTop)
        top.addSpacing(8)
        top.addLayout(notes, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.items_view, 1)
        layout.addWidget(self.item_detail)

    def show_package(self, package: dict[str, Any]) -> None:
        self.package = package
        note, act = definitions_note(package)
        self.source_note.setText(note)
        self.source_note.setStyleSheet("color:#6b4a00;" if act else "")
        summary = rebuild_summary_rows(package)
        total = {
            "kind_text": "Total",
            **{c.key: sum(int(r.get(c.key) or 0) for r in summary) for c in REBUILD_SUMMARY_COLUMNS if c.numeric},
        }
        self.summary_model.set_rows(summary, total=total if len(summary) > 1 else None)
        self.items_model.set_rows(rebuild_item_rows(package))
        self._fit_rows.start(0)
        if self.items_model.rowCount():
            self.items_view.selectRow(0)
        self.item_detail.setVisible(bool(self.items_model.rowCount()))
        self.effort_note.setVisible(bool(package.get("inventory")))

    def _show_item(self, current: Index, _previous: Index) -> None:
        if not current.isValid():
            self.item_detail.setText("")
            return
        row = self.items_model.row(current.row())
        label = "Why" if row["kind"] == "playbook" else "Details"
        self.item_detail.setText(f"{row['name']} — {label}: {row['notes'] or '—'}")

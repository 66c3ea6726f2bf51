"""The Reconciliation tab: counts per object, field totals read back, picklist distributions, failures.

Everything shown comes from one report dict built by the engine on a worker (``build_report``); this module
only presents it. Money arrives as exact decimal strings and is shown with thousands separators, never
through a float.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.run.results import explain
from crmmigrator_gui.gui.models import Column, Index, RecordsModel
from crmmigrator_gui.gui.pages.base import hint
from crmmigrator_gui.gui.widgets import configure_table

COUNT_COLUMNS = [
    Column("source_object", "Object"),
    Column("target_entity", "Destination table"),
    Column("source_records", "Source records", numeric=True),
    Column("loaded", "Loaded", numeric=True),
    Column("created", "Created", numeric=True),
    Column("updated", "Updated", numeric=True),
    Column("unchanged", "Unchanged", numeric=True),
    Column("failed", "Failed", numeric=True, alert=True),
    Column("skipped", "Skipped", numeric=True),
]
FAILURE_COLUMNS = [
    Column("source_object", "Object"),
    Column("source_id", "Source id"),
    Column("action", "Outcome"),
    Column("code", "Code"),
    Column("reason", "Reason"),
]
TOTAL_COLUMNS = [
    Column("source_column", "Source column"),
    Column("destination_column", "Destination column"),
    Column("source_total_text", "Source total", numeric=True),
    Column("expected_total_text", "Loaded (expected)", numeric=True),
    Column("destination_total_text", "Destination (read back)", numeric=True),
    Column("difference_text", "Difference", numeric=True),
    Column("not_loaded_text", "Not loaded", numeric=True),
    Column("verdict_text", "Verdict"),
]
DISTRIBUTION_COLUMNS = [
    Column("destination_column", "Destination column"),
    Column("label", "Option"),
    Column("source_values_text", "Source values"),
    Column("source_count", "Source", numeric=True),
    Column("loaded_count", "Loaded", numeric=True),
    Column("destination_count", "Destination", numeric=True),
    Column("difference", "Difference", numeric=True, alert=True),
]

#: Verdict → (text colour, background): the Pre-flight page's severity colours.
VERDICT_COLOURS = {
    "match": ("#1c5e33", "#e8f5ec"),
    "explained": ("#6b4a00", "#fff6e0"),
    "mismatch": ("#8a1c12", "#fdecea"),
}


def money_text(value: Any) -> str:
    """``"20698.79"`` → ``"20,698.79"`` (exact: Decimal, never float); other text unchanged."""
    if value in (None, ""):
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{number:,}"


_VERDICT_ORDER = {"mismatch": 0, "explained": 1, "match": 2}


def total_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's field totals with the display columns the table shows, mismatches first (the ones to read)."""
    rows = []
    for line in report.get("field_totals") or []:
        verdict = str(line.get("verdict") or "")
        notes = []
        if line.get("missing_count"):
            notes.append(f"{line['missing_count']} missing at the destination")
        if line.get("changed_count"):
            notes.append(f"{line['changed_count']} changed")
        if line.get("unparsed"):
            notes.append(f"{line['unparsed']} unparsed in the source")
        rows.append(
            {
                **line,
                "source_column": f"{line['source_object']}.{line['source_field']}",
                "destination_column": f"{line['target_entity']}.{line['target_field']}",
                "source_total_text": money_text(line.get("source_total")),
                "expected_total_text": money_text(line.get("expected_total")),
                "destination_total_text": money_text(line.get("destination_total")),
                "difference_text": money_text(line.get("difference")),
                "not_loaded_text": (
                    f"{line.get('not_loaded_records', 0):,} ({money_text(line.get('not_loaded_total'))})"
                ),
                "verdict_text": verdict + (f" — {', '.join(notes)}" if notes else ""),
            }
        )
    return sorted(rows, key=lambda r: _VERDICT_ORDER.get(str(r.get("verdict")), 0))


def distribution_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Choice distributions; the options whose destination count differs first."""
    rows = [
        {
            **d,
            "destination_column": f"{d['target_entity']}.{d['target_field']}",
            "source_values_text": ", ".join(d.get("source_values") or []),
        }
        for d in report.get("distributions") or []
    ]
    return sorted(rows, key=lambda r: not r.get("difference"))


def failure_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Failures keyed by source id, each with its plain-language reason (the report's, or explained here)."""
    return [
        {**f, "reason": f.get("reason") or explain(f.get("code"), f.get("message") or "")}
        for f in report.get("failures") or []
    ]


class VerdictModel(RecordsModel):
    """Field totals: the verdict cell and the row's difference in the verdict's colours."""

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if index.isValid() and role in (Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.BackgroundRole):
            row = self.row(index.row())
            key = self.columns[index.column()].key
            colours = VERDICT_COLOURS.get(str(row.get("verdict")))
            if colours and (key == "verdict_text" or (key == "difference_text" and row.get("verdict") == "mismatch")):
                return QBrush(QColor(colours[0] if role == Qt.ItemDataRole.ForegroundRole else colours[1]))
        return super().data(index, role)


def _table(model: RecordsModel, *, stretch_last: bool = True) -> QTableView:
    view = QTableView()
    configure_table(view)
    view.setModel(model)
    view.verticalHeader().hide()
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.horizontalHeader().setStretchLastSection(stretch_last)
    return view


def _fit(view: QTableView, widths: list[int]) -> None:
    header = view.horizontalHeader()
    for section, width in enumerate(widths):
        header.resizeSection(section, width)


class ReconcileView(QWidget):
    """Counts per object on top; field totals, choice distributions and failures in tabs below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts_model = RecordsModel(COUNT_COLUMNS, self)
        self.counts_view = _table(self.counts_model, stretch_last=False)
        self.counts_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.counts_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)

        self.totals_model = VerdictModel(TOTAL_COLUMNS, self)
        self.totals_view = _table(self.totals_model)
        _fit(self.totals_view, [190, 230, 110, 120, 150, 90, 110])
        self.read_back_note = hint(QLabel(""))
        self.read_back_note.setWordWrap(True)
        totals_page = QWidget()
        totals_layout = QVBoxLayout(totals_page)
        totals_layout.setContentsMargins(6, 6, 6, 6)
        totals_layout.addWidget(self.totals_view, 1)
        totals_layout.addWidget(self.read_back_note)

        self.distributions_model = RecordsModel(DISTRIBUTION_COLUMNS, self)
        self.distributions_view = _table(self.distributions_model, stretch_last=False)
        _fit(self.distributions_view, [230, 150, 300, 90, 90, 100, 90])

        self.failures_model = RecordsModel(FAILURE_COLUMNS, self)
        self.failures_view = _table(self.failures_model)
        _fit(self.failures_view, [120, 150, 80, 110])
        self.no_failures = QLabel("No failures: every source record reached the destination.")
        self.no_failures.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_failures.setStyleSheet("color:#1c5e33;")
        self.failures_stack = QStackedWidget()
        self.failures_stack.addWidget(self.failures_view)
        self.failures_stack.addWidget(self.no_failures)

        self.details = QTabWidget()
        self.details.setDocumentMode(True)
        self.details.addTab(totals_page, "Field totals")
        self.details.addTab(self.distributions_view, "Picklist distributions")
        self.details.addTab(self.failures_stack, "Failures")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.counts_view)
        splitter.addWidget(self.details)
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(splitter)

    def show_report(self, report: dict[str, Any]) -> None:
        objects = report["objects"]
        total_row = {
            "source_object": "Total",
            "target_entity": "",
            **{c.key: sum(o.get(c.key, 0) for o in objects) for c in COUNT_COLUMNS if c.numeric},
        }
        self.counts_model.set_rows(objects, total=total_row)
        rows = self.counts_model.rowCount()
        height = (
            self.counts_view.horizontalHeader().height() + rows * self.counts_view.verticalHeader().defaultSectionSize()
        )
        self.splitter.setSizes([height + 4, max(200, self.splitter.height() - height)])

        totals = total_rows(report)
        self.totals_model.set_rows(totals)
        verdicts = [t["verdict"] for t in totals]
        recon = report.get("reconciliation") or {}
        if recon.get("error"):
            note = str(recon["error"])
        elif totals:
            note = (
                f"{len(totals)} column total(s) read back with {recon.get('read_requests', 0):,} request(s): "
                f"{verdicts.count('match')} match, {verdicts.count('explained')} explained by records not loaded, "
                f"{verdicts.count('mismatch')} mismatch."
            )
        else:
            note = "No money or number column is mapped, or nothing is loaded."
        self.read_back_note.setText(note)
        mismatches = verdicts.count("mismatch")
        self.details.setTabText(0, f"Field totals ({mismatches} mismatch)" if mismatches else "Field totals")

        distributions = distribution_rows(report)
        self.distributions_model.set_rows(distributions)
        off = sum(1 for d in distributions if d["difference"])
        self.details.setTabText(1, f"Picklist distributions ({off} differ)" if off else "Picklist distributions")

        failures = failure_rows(report)
        self.failures_model.set_rows(failures)
        self.failures_stack.setCurrentWidget(self.failures_view if failures else self.no_failures)
        if not failures and not report.get("run"):
            self.no_failures.setText("Nothing is loaded at the destination from this project.")
        elif not failures:
            self.no_failures.setText("No failures: every source record reached the destination.")
        count = int(report.get("failure_count") or len(failures))
        shown = f", first {len(failures):,} shown" if len(failures) < count else ""
        self.details.setTabText(2, f"Failures ({count:,}{shown})")

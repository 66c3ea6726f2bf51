"""The Reconciliation tab: counts per object, field totals read back, picklist distributions, failures, the delta
runs. (The Rebuild reference tab is :mod:`.results_rebuild`.)

Everything shown comes from the plain dict the engine built on a worker (``build_report``); this module only
presents it. Money arrives as exact decimal strings and is shown with thousands separators, never through a
float.
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

DELTA_COLUMNS = [
    Column("run_text", "Delta run"),
    Column("source_object", "Object"),
    Column("new", "New", numeric=True),
    Column("changed", "Changed", numeric=True),
    Column("unchanged", "Unchanged", numeric=True),
    Column("deleted", "Deleted in source", numeric=True),
    Column("deleted_applied", "Deleted at destination", numeric=True),
    Column("deleted_reported", "Reported only", numeric=True),
    Column("created", "Created", numeric=True),
    Column("updated", "Updated", numeric=True),
    Column("failed", "Failed", numeric=True, alert=True),
]
#: The counts a delta row carries (summed over the deltas one run applied, except the run's own counts).
DELTA_CHANGES = ("new", "changed", "unchanged", "deleted", "deleted_applied", "deleted_reported")
DELTA_WRITES = ("created", "updated", "failed")
#: Objects with any of these come first in their run: the ones that only stayed the same sink to the bottom.
DELTA_COLUMNS_ACTIVE = ("new", "changed", "deleted", *DELTA_WRITES)

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


_RUN_STATUS_WORDS = {"rollback_incomplete": "partly rolled back", "completed_with_failures": "completed with failures"}
_DELTA_STATUS_WORDS = {"detected": "detected, not applied yet", "applying": "being applied", "applied": "applied"}
_DELTA_MODES = {"files": "newer export", "api": "source API"}


def status_words(status: str | None) -> str:
    """A run status as the consultant reads it (``rolled_back`` → ``rolled back``)."""
    text = str(status or "")
    return _RUN_STATUS_WORDS.get(text, text.replace("_", " "))


def moment_text(value: str | None) -> str:
    """``2026-11-22T02:20:56+00:00`` → ``2026-11-22 02:20 UTC``: minutes are enough to place a cutover change."""
    text = str(value or "")
    if len(text) < 16 or "T" not in text:
        return text
    zone = text[19:].lstrip(".0123456789")
    return f"{text[:10]} {text[11:16]} {'UTC' if zone in ('+00:00', 'Z', '') else zone}"


def delta_groups(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's deltas grouped by the run that applied them (one apply can take several detected deltas);
    a delta not applied yet stays on its own. Per object, change counts add up; the run's own created /
    updated / failed are the run's, so they are taken once."""
    groups: dict[Any, dict[str, Any]] = {}
    for entry in report.get("delta") or []:
        key = entry.get("run_id") if entry.get("run_id") is not None else ("pending", entry.get("delta_id"))
        group = groups.setdefault(
            key,
            {
                "run_id": entry.get("run_id"),
                "run_status": entry.get("run_status"),
                "delta_ids": [],
                "modes": [],
                "detected_at": [],
                "delta_status": entry.get("delta_status"),
                "objects": {},
            },
        )
        group["delta_ids"].append(entry.get("delta_id"))
        if entry.get("mode") and entry["mode"] not in group["modes"]:
            group["modes"].append(entry["mode"])
        if entry.get("detected_at"):
            group["detected_at"].append(entry["detected_at"])
        for obj in entry.get("objects") or []:
            row = group["objects"].setdefault(
                obj["source_object"], {"source_object": obj["source_object"], **dict.fromkeys(DELTA_CHANGES, 0)}
            )
            for key_ in DELTA_CHANGES:
                row[key_] += int(obj.get(key_) or 0)
            for key_ in DELTA_WRITES:
                row[key_] = int(obj.get(key_) or 0)
    out = []
    for group in groups.values():
        objects = list(group["objects"].values())
        totals = {k: sum(int(o.get(k) or 0) for o in objects) for k in (*DELTA_CHANGES, *DELTA_WRITES)}
        out.append({**group, "objects": objects, "totals": totals})
    return out


def _run_label(group: dict[str, Any]) -> str:
    if group["run_id"] is None:
        return f"Delta {', '.join(str(d) for d in group['delta_ids'])} (not applied yet)"
    return f"Run {group['run_id']} ({status_words(group['run_status'])})"


def delta_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per delta run × object; the run is named on its first row only, so the runs read as blocks."""
    rows = []
    for group in delta_groups(report):
        label = _run_label(group)
        active = sorted(group["objects"], key=lambda o: not any(o.get(k) for k in DELTA_COLUMNS_ACTIVE))
        for number, obj in enumerate(active):
            rows.append({**obj, "run_id": group["run_id"], "run_text": label if number == 0 else ""})
    return rows


def delta_line(group: dict[str, Any]) -> str:
    """One sentence per delta run: where the changes came from, what was loaded, what happened to deletions."""
    t = group["totals"]
    source = " and ".join(_DELTA_MODES.get(m, m) for m in group["modes"]) or "newer data"
    detected = moment_text(max(group["detected_at"])) if group["detected_at"] else ""
    head = f"{_run_label(group)} — {source}" + (f" detected {detected}" if detected else "")
    text = (
        f"{head}: {t['new']:,} new, {t['changed']:,} changed, {t['unchanged']:,} unchanged"
        + (f" → {t['created']:,} created, {t['updated']:,} updated, {t['failed']:,} failed" if group["run_id"] else "")
        + "."
    )
    if t["deleted"]:
        parts = []
        if t["deleted_applied"]:
            parts.append(f"{t['deleted_applied']:,} now deleted at the destination")
        if t["deleted_reported"]:
            parts.append(f"{t['deleted_reported']:,} reported only (still at the destination)")
        rest = t["deleted"] - t["deleted_applied"] - t["deleted_reported"]
        if rest and group["run_id"] is None:
            parts.append(f"{rest:,} to report or delete when the delta is applied")
        elif rest:
            parts.append(f"{rest:,} not deleted at the destination (never loaded, or see the audit log)")
        text += f" {t['deleted']:,} deleted in the source: {', '.join(parts)}."
    if group["run_id"] is None:
        text += f" Status: {_DELTA_STATUS_WORDS.get(str(group['delta_status']), status_words(group['delta_status']))}."
    return text


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


def table_view(model: RecordsModel, *, stretch_last: bool = True) -> QTableView:
    """A results table as both tabs show them: no row numbers, one row selectable."""
    view = QTableView()
    configure_table(view)
    view.setModel(model)
    view.verticalHeader().hide()
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.horizontalHeader().setStretchLastSection(stretch_last)
    return view


def fit_columns(view: QTableView, widths: list[int]) -> None:
    """Starting widths of the first columns (the user may resize them)."""
    header = view.horizontalHeader()
    for section, width in enumerate(widths):
        header.resizeSection(section, width)


class ReconcileView(QWidget):
    """Counts per object on top; field totals, choice distributions and failures in tabs below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts_model = RecordsModel(COUNT_COLUMNS, self)
        self.counts_view = table_view(self.counts_model, stretch_last=False)
        self.counts_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.counts_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)

        self.totals_model = VerdictModel(TOTAL_COLUMNS, self)
        self.totals_view = table_view(self.totals_model)
        fit_columns(self.totals_view, [190, 230, 110, 120, 150, 90, 110])
        self.read_back_note = hint(QLabel(""))
        self.read_back_note.setWordWrap(True)
        totals_page = QWidget()
        totals_layout = QVBoxLayout(totals_page)
        totals_layout.setContentsMargins(6, 6, 6, 6)
        totals_layout.addWidget(self.totals_view, 1)
        totals_layout.addWidget(self.read_back_note)

        self.distributions_model = RecordsModel(DISTRIBUTION_COLUMNS, self)
        self.distributions_view = table_view(self.distributions_model, stretch_last=False)
        fit_columns(self.distributions_view, [230, 150, 300, 90, 90, 100, 90])

        self.failures_model = RecordsModel(FAILURE_COLUMNS, self)
        self.failures_view = table_view(self.failures_model)
        fit_columns(self.failures_view, [120, 150, 80, 110])
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

        self.delta_model = RecordsModel(DELTA_COLUMNS, self)
        self.delta_view = table_view(self.delta_model, stretch_last=False)
        self.delta_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        delta_header = self.delta_view.horizontalHeader()
        delta_header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        delta_header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for section, column in enumerate(DELTA_COLUMNS):
            if not column.numeric or len(column.title) > 12:  # long titles are never cut off
                delta_header.setSectionResizeMode(section, QHeaderView.ResizeMode.ResizeToContents)
        self.delta_note = QLabel("")
        self.delta_note.setWordWrap(True)
        self.delta_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        delta_page = QWidget()
        delta_layout = QVBoxLayout(delta_page)
        delta_layout.setContentsMargins(6, 6, 6, 6)
        delta_layout.addWidget(self.delta_note)
        delta_layout.addWidget(self.delta_view, 1)
        self.delta_page = delta_page
        self.delta_tab = self.details.addTab(delta_page, "Delta")
        self.details.setTabVisible(self.delta_tab, False)  # only once a delta was detected

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
        self.show_delta(report)

    def show_delta(self, report: dict[str, Any]) -> None:
        """The Delta tab: per delta run and object, what the newer data held and what the run wrote."""
        groups = delta_groups(report)
        self.details.setTabVisible(self.delta_tab, bool(groups))
        rows = delta_rows(report)
        total = {"run_text": "Total", "source_object": ""}
        for key in (*DELTA_CHANGES, *DELTA_WRITES):
            total[key] = sum(int(r.get(key) or 0) for r in rows)
        self.delta_model.set_rows(rows, total=total if len(groups) > 1 else None)
        self.delta_note.setText("\n".join(delta_line(g) for g in groups))
        runs = sum(1 for g in groups if g["run_id"] is not None)
        pending = len(groups) - runs
        title = f"Delta ({runs} run{'' if runs == 1 else 's'}"
        self.details.setTabText(self.delta_tab, title + (f", {pending} not applied)" if pending else ")"))

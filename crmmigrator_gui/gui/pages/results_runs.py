"""The Runs & rollback tab: every run in the ledger, what it touched, and the rollback controls.

The run list is read on the worker (:func:`run_summaries`, from the crosswalk), never on the GUI thread.
After a rollback that refused records (somebody changed them in the destination after the run), the
panel lists each refused field as ours → theirs with who changed it, and offers "Roll back anyway".
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.gui.models import Column, RecordsModel
from crmmigrator_gui.gui.pages.base import hint
from crmmigrator_gui.gui.widgets import configure_table

_COUNTED = ("created", "updated", "linked", "unchanged", "failed", "skipped")
_COUNT_SQL = ", ".join(f"COALESCE(SUM(c.action = '{a}'), 0) AS {a}" for a in _COUNTED)

RUN_COLUMNS = [
    Column("id", "Run", numeric=True),
    Column("kind", "Kind"),
    Column("started", "Started (UTC)"),
    Column("status_text", "Status"),
    Column("created", "Created", numeric=True),
    Column("updated", "Updated", numeric=True),
    Column("linked", "Linked", numeric=True),
    Column("failed", "Failed", numeric=True, alert=True),
    Column("rolled_back", "Rolled back", numeric=True),
    Column("requests", "Requests", numeric=True),
    Column("actor", "By"),
]
TOUCHED_COLUMNS = [
    Column("target_entity", "Destination table"),
    Column("created", "Created", numeric=True),
    Column("updated", "Updated", numeric=True),
    Column("linked", "Linked", numeric=True),
    Column("unchanged", "Unchanged", numeric=True),
    Column("failed", "Failed", numeric=True, alert=True),
    Column("rolled_back", "Rolled back", numeric=True),
]
REFUSED_COLUMNS = [
    Column("record", "Record"),
    Column("source", "Source record"),
    Column("field", "Field"),
    Column("ours", "Ours (what the run wrote)"),
    Column("theirs", "Theirs (now in the destination)"),
    Column("modified_by", "Changed by"),
    Column("modified_on", "Changed at"),
]

#: A run that can still be rolled back (the engine's ``runs_to_roll_back`` takes the same ones).
ROLLABLE_EXCLUDED = ("rolled_back",)


def run_summaries(project: Project) -> list[dict[str, Any]]:
    """Every run, newest first, with what it did per destination table (counted from the crosswalk).

    Runs on the worker: on a million-record crosswalk these GROUP BYs take a while.
    """
    runs = project.query(
        f"SELECT r.id, r.kind, r.status, r.started_at, r.finished_at, r.actor, r.requests, r.seconds, {_COUNT_SQL}, "
        "COALESCE(SUM(c.rolled_back_at IS NOT NULL), 0) AS rolled_back "
        "FROM runs r LEFT JOIN crosswalk c ON c.run_id = r.id GROUP BY r.id ORDER BY r.id DESC"
    )
    touched: dict[int, list[dict[str, Any]]] = {}
    for row in project.query(
        f"SELECT c.run_id, c.target_entity, {_COUNT_SQL}, "
        "COALESCE(SUM(c.rolled_back_at IS NOT NULL), 0) AS rolled_back FROM crosswalk c "
        "GROUP BY c.run_id, c.target_entity ORDER BY c.run_id, MIN(c.seq)"
    ):
        touched.setdefault(int(row.pop("run_id")), []).append(row)
    for run in runs:
        run["touched"] = touched.get(int(run["id"]), [])
    return runs


def rollable(run: dict[str, Any] | None) -> bool:
    return bool(run) and run["status"] not in ROLLABLE_EXCLUDED and run["kind"] != "rollback"


def refused_rows(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per field that differs (ours → theirs); a record changed only in time gets one row too."""
    rows = []
    for failure in failures:
        if failure.get("action") != "refused":
            continue
        base = {
            "record": f"{failure.get('target_entity')} {failure.get('key')}",
            "source": f"{failure.get('source_object')} {failure.get('source_id')}",
            "modified_by": failure.get("modified_by") or "",
            "modified_on": failure.get("modified_on") or "",
            "message": failure.get("message") or "",
        }
        fields = failure.get("fields") or {}
        if not fields:
            rows.append({**base, "field": "(another column)", "ours": "", "theirs": "modified after our last write"})
        for name, values in fields.items():
            rows.append(
                {**base, "field": name, "ours": _text(values.get("ours")), "theirs": _text(values.get("theirs"))}
            )
    return rows


def _text(value: Any) -> str:
    return "(empty)" if value in (None, "") else str(value)


class _MessageModel(RecordsModel):
    """Refused rows: the engine's full sentence as the tooltip of every cell."""

    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if index.isValid() and role == Qt.ItemDataRole.ToolTipRole:
            return self.row(index.row()).get("message") or None
        return super().data(index, role)


def _table(model: RecordsModel) -> QTableView:
    view = QTableView()
    configure_table(view)
    view.setModel(model)
    view.verticalHeader().hide()
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    return view


class RollbackPanel(QWidget):
    """Runs, what the selected one touched, and rollback (one run, all runs, forced).

    Signals:
        rollback_requested(object, bool, bool): run id (None with all runs), all runs, force.
        audit_requested(int): show the audit log filtered to this run.
    """

    rollback_requested = Signal(object, bool, bool)
    audit_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[dict[str, Any]] = []
        self.refused_run: int | None = None
        self.busy = False

        self.runs_model = RecordsModel(RUN_COLUMNS, self)
        self.runs_view = _table(self.runs_model)
        header = self.runs_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.runs_view.selectionModel().selectionChanged.connect(self._selection_changed)

        self.touched_model = RecordsModel(TOUCHED_COLUMNS, self)
        self.touched_view = _table(self.touched_model)
        self.touched_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        theader = self.touched_view.horizontalHeader()
        theader.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        theader.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.touched_box = QGroupBox("What the selected run touched")
        QVBoxLayout(self.touched_box).addWidget(self.touched_view)

        self.rollback_button = QPushButton("Roll back this run")
        self.rollback_button.setToolTip(
            "Delete what the run created, restore what it updated and unlink what it linked. Records somebody "
            "changed in the destination since are left alone and listed."
        )
        self.rollback_all_button = QPushButton("Roll back all runs")
        self.rollback_all_button.setToolTip("Every run, newest first; stops at a run that cannot be rolled back fully.")
        self.audit_button = QPushButton("Show in audit log")
        self.selection_note = hint(QLabel(""))
        buttons = QHBoxLayout()
        buttons.addWidget(self.rollback_button)
        buttons.addWidget(self.rollback_all_button)
        buttons.addWidget(self.selection_note, 1)
        buttons.addWidget(self.audit_button)

        self.refused_model = _MessageModel(REFUSED_COLUMNS, self)
        self.refused_view = _table(self.refused_model)
        rheader = self.refused_view.horizontalHeader()
        for section, width in enumerate((230, 120, 110, 190, 210, 150)):
            rheader.resizeSection(section, width)
        rheader.setStretchLastSection(True)
        self.refused_note = QLabel("")
        self.refused_note.setWordWrap(True)
        self.force_button = QPushButton("Roll back anyway (force)…")
        self.force_button.setToolTip("Overwrite the destination's later changes with the values from before the run.")
        refused_actions = QHBoxLayout()
        refused_actions.addWidget(self.refused_note, 1)
        refused_actions.addWidget(self.force_button)
        self.refused_box = QGroupBox("Refused: changed in the destination after the run")
        self.refused_box.setStyleSheet("QGroupBox { color:#8a1c12; font-weight:600; }")
        refused_layout = QVBoxLayout(self.refused_box)
        refused_layout.addLayout(refused_actions)
        refused_layout.addWidget(self.refused_view, 1)
        self.refused_box.setVisible(False)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.runs_view)
        splitter.addWidget(self.touched_box)
        splitter.addWidget(self.refused_box)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([150, 200, 200])
        self.splitter = splitter

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)

        self.rollback_button.clicked.connect(self._roll_back_selected)
        self.rollback_all_button.clicked.connect(self._roll_back_all)
        self.force_button.clicked.connect(self._force)
        self.audit_button.clicked.connect(self._audit)
        self._update_buttons()

    # ------------------------------------------------------------------ data
    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        """Show ``runs`` (newest first); keep the selected run selected, else pick the newest rollable one."""
        previous = self.selected_run()
        self.runs = runs
        rows = [
            {
                **run,
                "started": str(run.get("started_at") or "").replace("T", " ").replace("+00:00", ""),
                "status_text": str(run["status"]).replace("_", " "),
            }
            for run in runs
        ]
        self.runs_model.set_rows(rows)
        ids = [r["id"] for r in runs]
        if previous is not None and previous["id"] in ids:
            target = ids.index(previous["id"])
        else:
            target = next((i for i, r in enumerate(runs) if rollable(r)), 0)
        if runs:
            self.select_row(target)
        else:
            self._selection_changed()
        self._fit_splitter()

    def _fit_splitter(self) -> None:
        """The run list as tall as its rows (3 to 8 shown); the rest for what the run touched and refusals."""
        row = self.runs_view.verticalHeader().defaultSectionSize()
        runs = self.runs_view.horizontalHeader().height() + row * min(max(len(self.runs), 3), 8) + 4
        total = max(self.splitter.height(), 400)
        if not self.refused_box.isHidden():
            touched = min(row * 6, max(total - runs - 220, 80))
            self.splitter.setSizes([runs, touched, total - runs - touched])
        else:
            self.splitter.setSizes([runs, total - runs, 0])

    def select_run(self, run_id: int) -> bool:
        for number, run in enumerate(self.runs):
            if run["id"] == run_id:
                self.select_row(number)
                return True
        return False

    def select_row(self, number: int) -> None:
        index = self.runs_model.index(number, 0)
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.runs_view.selectionModel().select(index, flags)
        self.runs_view.setCurrentIndex(index)
        self._selection_changed()

    def selected_run(self) -> dict[str, Any] | None:
        rows = self.runs_view.selectionModel().selectedRows() if self.runs_view.selectionModel() else []
        if not rows or rows[0].row() >= len(self.runs):
            return None
        return self.runs[rows[0].row()]

    def _selection_changed(self, *_args: Any) -> None:
        run = self.selected_run()
        touched = run["touched"] if run else []
        total = {
            "target_entity": "Total",
            **{c.key: sum(t.get(c.key, 0) for t in touched) for c in TOUCHED_COLUMNS[1:]},
        }
        self.touched_model.set_rows(touched, total=total if touched else None)
        if run:
            status = str(run["status"]).replace("_", " ")
            self.touched_box.setTitle(f"What run {run['id']} ({run['kind']}, {status}) touched")
            if run["status"] == "rolled_back":
                self.selection_note.setText(f"Run {run['id']} is rolled back.")
            elif rollable(run):
                self.selection_note.setText("")
            else:
                self.selection_note.setText(f"Run {run['id']} cannot be rolled back.")
        else:
            self.touched_box.setTitle("What the selected run touched")
            self.selection_note.setText("No run yet." if not self.runs else "")
        self._update_buttons()

    # ------------------------------------------------------------------ refused
    def show_outcome(self, results: list[dict[str, Any]]) -> None:
        """After a rollback: list the records it refused (the first run with refusals), or hide the list."""
        refusing = next((r for r in results if any(f.get("action") == "refused" for f in r["failures"])), None)
        if refusing is None:
            self.refused_run = None
            self.refused_model.set_rows([])
            self.refused_box.setVisible(False)
        else:
            self.refused_run = int(refusing["run_id"])
            rows = refused_rows(refusing["failures"])
            records = sum(1 for f in refusing["failures"] if f.get("action") == "refused")
            self.refused_model.set_rows(rows)
            self.refused_note.setText(
                f"Run {self.refused_run}: {records:,} record(s) were changed in the destination after the run "
                "and were left as they are. Everything else of the run was rolled back. Roll back anyway to "
                "overwrite those changes with the values from before the run."
            )
            self.refused_box.setVisible(True)
            self.select_run(self.refused_run)
        self._fit_splitter()
        self._update_buttons()

    def confirm_force(self) -> bool:
        """Ask before overwriting somebody else's changes (a real modal box; tests click it)."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Roll back anyway?")
        box.setText(
            f"Overwrite {self.refused_model.rowCount():,} change(s) made in the destination after run "
            f"{self.refused_run}?"
        )
        box.setInformativeText(
            "The records get back the values they had before the run, or are deleted if the run created them. "
            "The forced rollback is recorded in the audit log."
        )
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Yes).setText("Roll back anyway")
        self.confirm_box = box
        try:
            return box.exec() == QMessageBox.StandardButton.Yes
        finally:
            self.confirm_box = None
            box.deleteLater()

    # ------------------------------------------------------------------ actions
    def _roll_back_selected(self) -> None:
        run = self.selected_run()
        if rollable(run) and not self.busy:
            assert run is not None
            self.rollback_requested.emit(int(run["id"]), False, False)

    def _roll_back_all(self) -> None:
        if not self.busy and any(rollable(r) for r in self.runs):
            self.rollback_requested.emit(None, True, False)

    def _force(self) -> None:
        if self.refused_run is None or self.busy:
            return
        if self.confirm_force():
            self.rollback_requested.emit(self.refused_run, False, True)

    def _audit(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.audit_requested.emit(int(run["id"]))

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    def _update_buttons(self) -> None:
        run = self.selected_run()
        self.rollback_button.setEnabled(not self.busy and rollable(run))
        self.rollback_button.setText(f"Roll back run {run['id']}" if run and rollable(run) else "Roll back this run")
        self.rollback_all_button.setEnabled(not self.busy and any(rollable(r) for r in self.runs))
        self.audit_button.setEnabled(run is not None)
        self.force_button.setEnabled(not self.busy and self.refused_run is not None)

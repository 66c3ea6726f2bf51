"""The Map page's transform editor: the selected row's transform, with a live preview on its real values.

Parameter widgets are generated from the engine's ``transforms.CATALOG`` (text, choice, yes/no, columns,
time zone, phone region, date format, JSON). Each edit restarts a short timer; when it fires, the preview
runs ``editing.preview_row`` on the row's staged values, so typing never waits on the engine. Apply stores
the spec with ``editing.set_transform`` (validated and audited by the engine).
"""

from __future__ import annotations

import functools
import json
from html import escape
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.mapping import editing, transforms
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.source.dates import DATE_FORMATS, SPECIAL_FORMATS
from crmmigrator_gui.gui.models import Column, RecordsModel, row_target
from crmmigrator_gui.gui.pages.base import hint
from crmmigrator_gui.gui.widgets import configure_table

PREVIEW_DELAY_MS = 150  # debounce: the preview follows typing without running on every keystroke
PREVIEW_LIMIT = 20
FIXED_TRANSFORMS = ("key", "lookup", "owner")  # rows that build keys and links: not the consultant's to retype


@functools.cache
def _time_zones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))


@functools.cache
def _regions() -> list[str]:
    import phonenumbers

    return sorted(phonenumbers.SUPPORTED_REGIONS)


def _catalog() -> dict[str, dict[str, Any]]:
    return {entry["type"]: entry for entry in transforms.CATALOG}


class ParamWidget:
    """One generated parameter editor: a widget plus how to read and write its value."""

    def __init__(self, param: dict[str, Any], columns: list[str], on_change: Any) -> None:
        self.name = str(param["name"])
        self.kind = str(param.get("kind") or "text")
        self.default = bool(param.get("default")) if self.kind == "bool" else param.get("default")
        choices = [str(c) for c in param.get("choices") or []]
        self.widget: QWidget
        if self.kind == "bool":
            box = QCheckBox()
            box.toggled.connect(on_change)
            self.widget = box
        elif self.kind == "columns":
            listing = QListWidget()
            for column in columns:
                item = QListWidgetItem(column)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
                listing.addItem(item)
            listing.setMaximumHeight(listing.sizeHintForRow(0) * 5 + 6 if columns else 40)
            listing.itemChanged.connect(on_change)
            self.widget = listing
        elif self.kind in ("choice", "column", "tz", "region", "format"):
            combo = QComboBox()
            if self.kind == "choice" and choices and self.default not in choices:
                choices = ["", *choices]  # "not set": the engine's default applies
            items = choices or {
                "column": ["", *columns],
                "tz": _time_zones(),
                "region": _regions(),
                "format": [*DATE_FORMATS, *SPECIAL_FORMATS],
            }.get(self.kind, [])
            combo.addItems(items)
            if self.kind in ("tz", "region", "format") or (self.kind == "choice" and not choices):
                combo.setEditable(True)
                combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
                completer = QCompleter(items, combo)
                completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
                completer.setFilterMode(Qt.MatchFlag.MatchContains)
                combo.setCompleter(completer)
                combo.editTextChanged.connect(on_change)
            combo.currentIndexChanged.connect(on_change)
            self.widget = combo
        else:  # text and json
            edit = QLineEdit()
            if self.default not in (None, ""):
                edit.setPlaceholderText(str(self.default))
            edit.textChanged.connect(on_change)
            self.widget = edit
        if param.get("help"):
            self.widget.setToolTip(str(param["help"]))

    def show_default(self, text: str) -> None:
        """Say what an empty field means (a placeholder; it is not written into the spec)."""
        widget = self.widget
        if isinstance(widget, QComboBox) and widget.isEditable() and widget.lineEdit() is not None:
            widget.lineEdit().setPlaceholderText(text)
        elif isinstance(widget, QLineEdit):
            widget.setPlaceholderText(text)

    def set_value(self, value: Any) -> None:
        value = self.default if value is None else value
        widget = self.widget
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QListWidget):
            wanted = [str(v) for v in value or []]
            for number in range(widget.count()):
                item = widget.item(number)
                item.setCheckState(Qt.CheckState.Checked if item.text() in wanted else Qt.CheckState.Unchecked)
        elif isinstance(widget, QComboBox):
            text = "" if value is None else str(value)
            position = widget.findText(text)
            if position >= 0:
                widget.setCurrentIndex(position)
            elif widget.isEditable():
                widget.setEditText(text)
        elif isinstance(widget, QLineEdit):
            shown = json.dumps(value) if self.kind == "json" and value is not None else value
            widget.setText("" if shown is None else str(shown))

    def value(self) -> Any:
        widget = self.widget
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QListWidget):
            return [
                widget.item(n).text()
                for n in range(widget.count())
                if widget.item(n).checkState() == Qt.CheckState.Checked
            ]
        if isinstance(widget, QComboBox):
            return widget.currentText().strip()
        if isinstance(widget, QLineEdit):
            if self.kind == "json" and widget.text().strip():
                try:
                    return json.loads(widget.text())
                except ValueError:
                    return widget.text()  # validate() names the parameter
            return widget.text()
        return None


class PreviewModel(RecordsModel):
    """Raw source value → the value the destination will store, or why it cannot be converted."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(
            [Column("raw", "Source value"), Column("value", "Becomes"), Column("remark", "Problem or note")], parent
        )

    def set_preview(self, results: list[dict[str, Any]]) -> None:
        """Engine preview rows; a row's error (red) or its notes (e.g. "first of 2 numbers kept") as the remark."""
        self.set_rows(
            [
                {
                    **r,
                    "value": "" if r.get("error") else _shown(r.get("value")),
                    "remark": r.get("error") or "; ".join(str(n) for n in r.get("notes") or []),
                }
                for r in results
            ]
        )

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if index.isValid() and role == Qt.ItemDataRole.ForegroundRole:
            row = self.row(index.row())
            if row.get("error"):
                return QBrush(QColor("#b3261e"))
            if index.column() == 2:
                return QBrush(QColor("#6b4a00"))
        if index.isValid() and role == Qt.ItemDataRole.ToolTipRole:
            text = super().data(index, Qt.ItemDataRole.DisplayRole)
            return text or None
        return super().data(index, role)


class TransformEditor(QWidget):
    """Edit the selected row's transform with a live preview on its real staged values.

    Signals:
        applied(): the transform was stored (the row is now confirmed by the consultant).
        error(str): the engine refused to store it.
    """

    applied = Signal()
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, actor: str | None = None) -> None:
        super().__init__(parent)
        self.actor = actor
        self._project: Project | None = None
        self._row: dict[str, Any] | None = None
        self._columns: list[str] = []
        self._params: list[ParamWidget] = []
        self._loading = False
        self.previews = 0  # preview calls so far (tests and diagnostics)

        self.title = QLabel()
        self.title.setWordWrap(True)
        self.type_combo = QComboBox()
        self.type_combo.setMaxVisibleItems(20)
        group = None
        for entry in transforms.CATALOG:
            if not entry.get("editable", True) or entry["type"] in FIXED_TRANSFORMS:
                continue  # offered only when a row already has it (shown read-only)
            if group is not None and entry.get("group") != group:
                self.type_combo.insertSeparator(self.type_combo.count())
            group = entry.get("group")
            self.type_combo.addItem(str(entry.get("label") or entry["type"]), entry["type"])
        self._offered = self.type_combo.count()
        self.help = hint(QLabel())
        self.help.setWordWrap(True)
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.preview_model = PreviewModel(self)
        self.preview_view = QTableView()
        configure_table(self.preview_view)
        self.preview_view.setModel(self.preview_model)
        self.preview_view.verticalHeader().hide()
        header = self.preview_view.horizontalHeader()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.preview_status = hint(QLabel())
        self.preview_status.setWordWrap(True)

        self.apply_button = QPushButton("Apply transform")
        self.revert_button = QPushButton("Revert")
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_status, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.apply_button)

        type_row = QFormLayout()
        type_row.setContentsMargins(0, 0, 0, 0)
        type_row.addRow("Transform:", self.type_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addLayout(type_row)
        layout.addWidget(self.help)
        layout.addWidget(self.form_host)
        layout.addWidget(self.preview_view, 1)
        layout.addLayout(buttons)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(PREVIEW_DELAY_MS)
        self.timer.timeout.connect(self.update_preview)
        self.type_combo.currentIndexChanged.connect(self._type_changed)
        self.apply_button.clicked.connect(self.apply)
        self.revert_button.clicked.connect(self.revert)
        self.set_row(None, None, [])

    # ------------------------------------------------------------------ loading
    def set_row(self, project: Project | None, row: dict[str, Any] | None, columns: list[str]) -> None:
        self.timer.stop()
        self._project, self._row, self._columns = project, row, list(columns)
        mapped = row is not None and bool(row.get("target_entity"))
        fixed = mapped and not self.editable()
        for widget in (self.type_combo, self.form_host, self.apply_button, self.revert_button):
            widget.setEnabled(mapped and not fixed)
        if row is None:
            self.title.setText("Select a row in the map to edit its transform.")
        elif not mapped:
            self.title.setText(f"<b>{escape(row['source_object'])}.{escape(row['source_field'])}</b> is not migrated.")
        else:
            source = f"<b>{escape(row['source_object'])}.{escape(row['source_field'])}</b> → {escape(row_target(row))}"
            note = (
                "<br><span style='color:#6b6b6b'>This row builds a key or a link between "
                "records; its transform is fixed.</span>"
                if fixed
                else ""
            )
            self.title.setText(source + note)
        self.revert()

    def original_spec(self) -> dict[str, Any]:
        spec = (self._row or {}).get("transform") or {"type": "text"}
        return json.loads(spec) if isinstance(spec, str) else dict(spec)

    def _stored_type(self) -> str:
        """The stored type under its catalogue name (``names`` is shown as ``text``)."""
        kind = str(self.original_spec().get("type") or "text")
        return str(getattr(transforms, "ALIASES", {}).get(kind, kind))

    def revert(self) -> None:
        """Show the stored transform again, discarding unsaved edits."""
        spec = self.original_spec()
        self._loading = True
        try:
            kind = self._stored_type()
            while self.type_combo.count() > self._offered:  # the previous row's read-only type
                self.type_combo.removeItem(self.type_combo.count() - 1)
            position = self.type_combo.findData(kind)
            if position < 0:  # a type the editor does not offer for new choices (keys, links, structure)
                entry = _catalog().get(kind, {})
                self.type_combo.addItem(str(entry.get("label") or kind), kind)
                position = self.type_combo.count() - 1
            self.type_combo.setCurrentIndex(position)
            self._build_params(kind)
            for param in self._params:
                param.set_value(spec.get(param.name))
        finally:
            self._loading = False
        self._edited()
        if self._row is None or not self._row.get("target_entity"):
            self.preview_model.set_rows([])
            self.preview_status.setText("")
        else:
            self.update_preview()

    def _type_changed(self) -> None:
        if self._loading:
            return
        self._build_params(self.current_type())
        self._edited()

    def _build_params(self, kind: str) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self._params = []
        entry = _catalog().get(kind, {})
        self.help.setText(str(entry.get("help") or ""))
        self.help.setVisible(bool(entry.get("help")))
        bound = self._project_defaults(kind)
        for param in entry.get("params") or []:
            widget = ParamWidget(param, self._columns, self._edited)
            if param["name"] in bound:  # left out of the spec, the load uses the project's value: show that
                widget.default = bound[param["name"]]
                widget.show_default(f"{bound[param['name']]} (the project's default)")
            self._params.append(widget)
            self.form.addRow(f"{param.get('label') or param['name']}:", widget.widget)
            widget.set_value(None)
        self.form_host.setVisible(bool(self._params))

    def _project_defaults(self, kind: str) -> dict[str, Any]:
        """What the load fills in for a parameter left empty (the playbook's phone region, time zone)."""
        if self._project is None:
            return {}
        try:
            bound = editing.bound_spec(self._project, {"type": kind})
        except MigratorError:
            return {}
        return {k: v for k, v in bound.items() if k != "type" and v not in (None, "")}

    # ------------------------------------------------------------------ editing
    def current_type(self) -> str:
        return str(self.type_combo.currentData() or "text")

    def spec(self) -> dict[str, Any]:
        """The spec as the widgets show it: parameters left at their default are left out, unless stored."""
        original = self.original_spec()
        same_type = self._stored_type() == self.current_type()
        spec: dict[str, Any] = {"type": original["type"] if same_type else self.current_type()}
        for param in self._params:
            value = param.value()
            if value in ("", None, []) and param.kind != "bool":
                continue
            if value == param.default and not (same_type and param.name in original):
                continue
            spec[param.name] = value
        if same_type:  # keys the editor has no widget for travel unchanged
            known = {p.name for p in self._params}
            spec.update({k: v for k, v in original.items() if k not in known and k != "type"})
        return spec

    def dirty(self) -> bool:
        """Whether the widgets say something else than the stored spec (compared in the engine's normal form)."""
        return self._row is not None and _normal(self.spec()) != _normal(self.original_spec())

    def editable(self) -> bool:
        if self._row is None or not self._row.get("target_entity"):
            return False
        kind = self._stored_type()
        return kind not in FIXED_TRANSFORMS and bool(_catalog().get(kind, {}).get("editable", True))

    def _edited(self, *_args: Any) -> None:
        if self._loading:
            return
        dirty = self.editable() and self.dirty()
        self.apply_button.setEnabled(dirty)
        self.revert_button.setEnabled(dirty)
        self.timer.start()

    def update_preview(self) -> None:
        """Preview the current spec on the row's real values (called after the debounce delay)."""
        self.timer.stop()
        if self._project is None or self._row is None or not self._row.get("target_entity"):
            return
        spec = self.spec()
        self.previews += 1
        try:
            transforms.validate(spec)
            rows = editing.preview_row(self._project, int(self._row["id"]), spec, limit=PREVIEW_LIMIT)
        except MigratorError as exc:
            self.preview_model.set_rows([])
            self.preview_status.setText(f"<span style='color:#b3261e'>{escape(str(exc))}</span>")
            self.apply_button.setEnabled(False)
            return
        self.preview_model.set_preview(rows)
        problems = sum(1 for r in rows if r.get("error"))
        if not rows:
            self.preview_status.setText("No values to preview: the column is empty.")
        elif problems:
            self.preview_status.setText(
                f"<span style='color:#b3261e'>{problems} of {len(rows)} sample value(s) cannot be converted.</span>"
            )
        else:
            self.preview_status.setText(f"All {len(rows)} sample value(s) convert.")

    def apply(self) -> None:
        if self._project is None or self._row is None or not self.editable():
            return
        try:
            editing.set_transform(self._project, int(self._row["id"]), self.spec(), actor=self.actor)
        except MigratorError as exc:
            self.error.emit(str(exc))
            return
        self.applied.emit()


def _normal(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return transforms.validate(spec)
    except MigratorError:
        return spec


def _shown(value: Any) -> str:
    if value is None:
        return "(empty)"
    return str(value)

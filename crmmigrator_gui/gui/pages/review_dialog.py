"""The customer's changes from the review workbook, shown before anything is applied.

The page reads the workbook on its worker (``workbook.read_review``, no writes) and opens
:class:`ReviewDiffDialog` with the result; only its Apply button leads to ``workbook.apply_review``.
A workbook with errors (an unknown destination, a renamed sheet, a tampered key) cannot be applied.
"""

from __future__ import annotations

import functools
from html import escape
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from crmmigrator_gui.gui.models import Column, RecordsModel
from crmmigrator_gui.gui.pages.base import set_banner
from crmmigrator_gui.gui.widgets import configure_table


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        where = ", ".join(f"{k} {error[k]}" for k in ("sheet", "row", "column") if error.get(k) not in (None, ""))
        message = error.get("message") or error.get("error") or ""
        return f"{where}: {message}" if where else str(message)
    return str(error)


class ReviewDiffDialog(QDialog):
    """The customer's changes from the review workbook, applied only when the consultant says so.

    ``accepted`` means "apply": the page then runs ``workbook.apply_review`` on its worker.
    """

    COLUMNS = (
        Column("kind", "Kind"),
        Column("sheet", "Sheet"),
        Column("row", "Row", numeric=True),
        Column("where", "Source field"),
        Column("source_value", "Source value"),
        Column("column", "Column"),
        Column("before", "Before"),
        Column("after", "After"),
    )

    def __init__(self, diff: Any, filename: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.diff = diff
        self.setWindowTitle("Changes from the customer's review workbook")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(1000, 520)
        changes = list(getattr(diff, "changes", []) or [])
        errors = [_error_text(e) for e in getattr(diff, "errors", []) or []]
        kinds = {k: sum(1 for c in changes if getattr(c, "kind", "") == k) for k in ("field", "value", "note")}
        summary = QLabel(
            f"<b>{len(changes)} change(s)</b> in <b>{escape(filename)}</b>: {kinds['field']} destination field(s), "
            f"{kinds['value']} value mapping(s), {kinds['note']} note(s). Nothing changes in the project until you "
            "press <b>Apply changes</b>."
        )
        summary.setWordWrap(True)
        self.errors = QLabel()
        self.errors.setWordWrap(True)
        if errors:
            shown = "\n".join(f"• {e}" for e in errors[:12])
            more = f"\n… and {len(errors) - 12} more" if len(errors) > 12 else ""
            set_banner(
                self.errors,
                f"The workbook has {len(errors)} problem(s); fix them and import it again:\n{shown}{more}",
                "error",
            )
        else:
            set_banner(self.errors, "")
        self.model = RecordsModel(list(self.COLUMNS), self)
        self.model.set_rows([_change_row(c) for c in changes])
        self.view = QTableView()
        configure_table(self.view)
        self.view.setModel(self.model)
        self.view.verticalHeader().hide()
        header = self.view.horizontalHeader()
        for column, width in enumerate((56, 100, 44, 180, 100, 160, 170)):
            header.resizeSection(column, width)
        header.setSectionResizeMode(len(self.COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.buttons = QDialogButtonBox()
        self.apply_button = self.buttons.addButton("Apply changes", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Don't apply", QDialogButtonBox.ButtonRole.RejectRole)
        self.apply_button.setEnabled(bool(changes) and not errors)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(self.errors)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.buttons)


def _change_row(change: Any) -> dict[str, Any]:
    get = functools.partial(getattr, change)
    return {
        "kind": get("kind", ""),
        "sheet": get("sheet", ""),
        "row": get("row", None),
        "where": f"{get('source_object', '')}.{get('source_field', '')}",
        "source_value": get("source_value", None),
        "column": get("column", ""),
        "before": get("before", None),
        "after": get("after", None),
    }

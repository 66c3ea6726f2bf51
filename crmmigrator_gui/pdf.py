"""Print an HTML report to PDF with Qt (QTextDocument + QPdfWriter), outside the engine.

The engine imports no Qt, so it runs this module as a child process (``python -m crmmigrator_gui.pdf IN.html
OUT.pdf``) with ``QT_QPA_PLATFORM=offscreen``: no display is needed. The GUI may call :func:`html_to_pdf`
directly, in-process, since its QApplication already exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def html_to_pdf(document: str, path: Path, *, title: str = "Reconciliation report") -> None:
    """Lay out ``document`` on A4 pages with 12 mm margins and write it to ``path``.

    Needs a QGuiApplication (or QApplication) to exist, because text layout needs fonts.
    """
    from PySide6.QtCore import QMarginsF, QSizeF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

    writer = QPdfWriter(str(path))
    writer.setTitle(title)
    writer.setCreator("CRM Migrator")
    writer.setResolution(300)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(12, 12, 12, 12),
            QPageLayout.Unit.Millimeter,
        )
    )
    doc = QTextDocument()
    doc.setDocumentMargin(0)
    doc.setHtml(document)
    # Lay out at the page's size in CSS pixels (96 per inch), so a font size in pt prints at that size.
    page = writer.pageLayout().paintRect(QPageLayout.Unit.Point)
    doc.setPageSize(QSizeF(page.width() * 96 / 72, page.height() * 96 / 72))
    doc.print_(writer)


def main(argv: list[str]) -> int:
    """``python -m crmmigrator_gui.pdf IN.html OUT.pdf``: exit 0 when OUT.pdf was written."""
    if len(argv) != 2:
        print("usage: python -m crmmigrator_gui.pdf IN.html OUT.pdf", file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(["crmmigrator-pdf"])
    try:
        source, target = Path(argv[0]), Path(argv[1])
        html_to_pdf(source.read_text(encoding="utf-8"), target)
    except OSError as exc:
        print(f"cannot print the PDF: {exc}", file=sys.stderr)
        return 1
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

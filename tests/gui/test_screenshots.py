"""Render every wizard page to PNG after driving real data through it (STYLE rule 16).

By default the images go to a temporary folder, so a normal test run leaves the tree alone.
To refresh the documentation images::

    CRMMIGRATOR_SCREENSHOTS_DIR=docs/screenshots QT_QPA_PLATFORM=offscreen \\
        python -m pytest tests/gui/test_screenshots.py -q

Then open each PNG and look at it: clipped labels, empty grids and tiny columns are bugs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

pytestmark = pytest.mark.gui


def _shot(wizard, folder: Path, name: str) -> Path:
    wizard.repaint()
    path = folder / f"{name}.png"
    assert wizard.grab().save(str(path)), path
    image = QImage(str(path))
    assert image.width() >= 1000
    assert image.height() >= 650
    return path


def test_screenshots_of_every_page(qtbot, wizard, driver, tmp_path, sample_export):
    folder = Path(os.environ.get("CRMMIGRATOR_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    shots = []

    project = wizard.project_page
    project.choose_new(tmp_path / "acme-field-services")
    shots.append(_shot(wizard, folder, "01-project"))
    driver.next()

    connect = wizard.connect_page
    connect.ui.orgRadio.setChecked(True)
    connect.ui.urlEdit.setText("https://acme.crm4.dynamics.com")
    connect.ui.tenantEdit.setText("acme.onmicrosoft.com")
    connect.ui.clientIdEdit.setText("3f2b8c1e-6a4d-4b0e-9a57-1c2d3e4f5a6b")
    shots.append(_shot(wizard, folder, "02a-connect-org"))
    connect.ui.urlEdit.clear()
    connect.ui.tenantEdit.clear()
    connect.ui.clientIdEdit.clear()
    connect.ui.sandboxRadio.setChecked(True)
    driver.run(connect.ui.testButton, connect)
    shots.append(_shot(wizard, folder, "02b-connect-sandbox"))
    driver.next()

    importer = wizard.import_page
    driver.import_files(sample_export)
    importer.select_object("bookings")
    shots.append(_shot(wizard, folder, "03-import"))
    driver.next()

    mapper = wizard.map_page
    driver.run(mapper.automap_button, mapper)
    mapper.view.selectRow(7)
    shots.append(_shot(wizard, folder, "04a-map-proposed"))
    driver.click(mapper.confirm_all_button)
    shots.append(_shot(wizard, folder, "04b-map-confirmed"))
    driver.next()

    loader = wizard.load_page
    shots.append(_shot(wizard, folder, "05a-load-ready"))
    driver.run(loader.load_button, loader)
    shots.append(_shot(wizard, folder, "05b-load-done"))
    driver.next()

    results = wizard.results_page
    driver.wait_idle(results)
    shots.append(_shot(wizard, folder, "06a-results"))
    driver.run(results.rollback_button, results)
    shots.append(_shot(wizard, folder, "06b-results-rolled-back"))

    assert all(p.stat().st_size > 10_000 for p in shots)

"""The PDF report: HTML printed by Qt, in-process (GUI) and through the engine's child process (CLI)."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal

import pytest

from crmmigrator_gui.engine.demo.octopuspro import generate_export
from crmmigrator_gui.engine.mapping.maps import accept, run_automap
from crmmigrator_gui.engine.mapping.signoff import record_signoff
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.report.files import render_html, write_report
from crmmigrator_gui.engine.report.report import build_report
from crmmigrator_gui.engine.run.load import load
from crmmigrator_gui.engine.source.importer import import_paths
from crmmigrator_gui.pdf import html_to_pdf


def _text(pdf) -> str:
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is needed to read the PDF back")
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def report(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMMIGRATOR_HOME", str(tmp_path / "home"))
    export = generate_export(tmp_path / "export", records=120, seed=5)
    project = Project.create(tmp_path / "p.cmproj", source="octopuspro", target="dynamics365")
    import_paths(project, export.files)
    run_automap(project)
    accept(project, actor="tester")
    record_signoff(project, "test fixture", note="GUI test: the Sample page is driven in test_sample_page.py")
    load(project)
    yield build_report(project)
    project.close()


def test_pdf_through_the_engine_child_process(report, tmp_path):
    out = tmp_path / "report.pdf"
    write_report(out, report)  # the CLI's path: no Qt in this process's engine code
    assert out.read_bytes().startswith(b"%PDF")
    text = _text(out)
    assert "Reconciliation" in text
    assert "Field totals" in text
    payments = next(t for t in report["field_totals"] if t["source_object"] == "payments")
    assert f"{Decimal(payments['destination_total']):,}" in text  # the read-back total is printed
    assert not list(tmp_path.glob(".report.pdf.*"))


def test_html_to_pdf_in_process(qapp, report, tmp_path):
    out = tmp_path / "inproc.pdf"
    html_to_pdf(render_html(report, printable=True), out)
    text = _text(out)
    assert report["pair"].split(" ")[0] in text
    assert "Choice distributions" in text

"""ServiceTracker demo source: the project's embedded Salesforce org, seeded with the ServiceTracker package.

``prepare_source`` creates the embedded org (``embedded_source_path``) through the emulator's own seed
(``SalesforceSandbox(seed="servicetracker:N")``: clients, contacts, technicians, sites, assets, contracts,
parts, work orders and lines, inspections, files, ~5 % of work orders, lines and contacts in the recycle
bin). N is chosen so the org holds about ``records`` live and deleted rows in total. It returns ~80 % of
the technicians as ``(full name, e-mail)`` so the destination already has most of them as users, as an
admin would have provisioned; the rest exercise the "unmatched technician → migration user" path.

The emulator's generator uses its own fixed random seed, so ``seed`` does not change the data.
"""

from __future__ import annotations

import httpx

from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target.connection import embedded_source_path

KIND = "api"
ROWS_PER_UNIT = 11.4  # rows the seed makes per unit of N (see sandbox/salesforce/seed.py)
TECH_DOMAIN = "@servicetracker.example"


def seed_size(records: int) -> int:
    return max(10, round(records / ROWS_PER_UNIT))


def prepare_source(project: Project, *, records: int = 2000, seed: int = 7) -> list[tuple[str, str]]:
    """Seed the embedded ServiceTracker org; return the technicians the destination should know."""
    from crmmigrator_gui.sandbox.salesforce.app import SalesforceSandbox

    sandbox = SalesforceSandbox(embedded_source_path(project), seed=f"servicetracker:{seed_size(records)}")
    try:
        with httpx.Client(
            transport=httpx.WSGITransport(app=sandbox), base_url="http://servicetracker.localhost"
        ) as http:
            body = http.get(
                "/services/data/v62.0/query",
                params={"q": f"SELECT Name, Email FROM User WHERE Email LIKE '%{TECH_DOMAIN}' ORDER BY Email"},
                headers={"Authorization": f"Bearer {sandbox.issue_token()}"},
            ).json()
    finally:
        sandbox.close()
    technicians = [(r["Name"], r["Email"]) for r in body.get("records", [])]
    return technicians[: max(1, int(len(technicians) * 0.8))]

"""Embedded ServiceTitan v2 API emulator (the "Dispatch Pro" source platform) backed by SQLite.

Entry point: :class:`crmmigrator_gui.sandbox.servicetitan.app.ServiceTitanSandbox` (a WSGI app). Modules:
``catalog`` (entities, paths, filters as data), ``store`` (SQLite), ``seed`` / ``seed_work`` / ``fakes``
(deterministic tenant with the §6 traps), ``query`` (list paging and export tokens), ``auth`` (token
endpoint, credential checks, rate limit), ``mutate`` (cutover activity), ``errors`` (problem details),
``testing`` (an authenticated httpx client for tests).
"""

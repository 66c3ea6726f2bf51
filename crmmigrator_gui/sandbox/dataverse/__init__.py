"""Embedded Dataverse Web API emulator (OData v4, ``/api/data/v9.2``) backed by SQLite.

Entry point: :class:`crmmigrator_gui.sandbox.dataverse.app.DataverseSandbox` (a WSGI app). Modules:
``catalog`` (tables from ``catalog.json``), ``store`` (SQLite), ``records`` (row rules), ``odata`` (URL
syntax), ``service`` (queries and service documents), ``batch``, ``bulk``, ``metadata`` / ``schema``
(metadata read / write), ``faults`` (fault injection and throttling), ``errors`` (error codes).
"""

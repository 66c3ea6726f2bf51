"""Embedded Salesforce REST / Bulk API 2.0 emulator backed by SQLite.

Entry point: :class:`crmmigrator_gui.sandbox.salesforce.app.SalesforceSandbox` (a WSGI app). Modules:
``catalog`` (objects/fields from ``catalog.json``, describe, FLS), ``store`` (SQLite), ``records`` (write
rules), ``values`` (coercion), ``rest`` (``/sobjects``), ``soql`` + ``query`` (SOQL), ``composite``
(Collections, Composite), ``bulk`` (Bulk 2.0), ``oauth``, ``files`` (ContentVersion), ``tooling`` (custom
fields/objects, FieldPermissions), ``seed`` (base org and the ServiceTracker org), ``ids``, ``errors``.
"""

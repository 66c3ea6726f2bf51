"""CRM Migrator: field-service data into Dynamics 365 Sales or Salesforce.

Layout (the pipeline, left to right):
    engine/source   -> read export files into staging (no Qt)
    engine/project  -> the SQLite project file: staging, maps, runs, crosswalk, audit
    engine/mapping  -> playbooks, auto-mapping, value maps, transforms
    engine/plan     -> dependency-ordered load plan and payload building
    engine/target   -> destination clients (Dataverse over httpx)
    engine/run      -> load and rollback
    engine/report   -> reconciliation report
    sandbox/        -> embedded emulators of the destination services (no Qt)
    cli/            -> headless face
    gui/            -> Qt wizard face (the only package that imports PySide6)
"""

__version__ = "0.1.0"

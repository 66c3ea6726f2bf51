"""Console entry point: no arguments opens the wizard, anything else is the headless CLI.

Kept outside ``cli`` so that the CLI package itself never imports Qt.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--print-pdf"]:  # internal: the engine prints PDFs in a child process (frozen app too)
        from crmmigrator_gui.pdf import main as pdf_main

        return pdf_main(args[1:])
    if not args:
        from crmmigrator_gui.gui.app import run_app

        return run_app()
    from crmmigrator_gui.cli.main import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())

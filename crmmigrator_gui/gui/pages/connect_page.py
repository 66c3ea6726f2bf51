"""Step 2, Connect: the embedded sandbox (default) or a Dynamics 365 org, and a connection test.

The form is designed in ``ui/connect_page.ui``. Only non-secret settings reach the project
file; the client secret goes to the OS keyring through ``engine.target.connection.configure``
and the field is cleared as soon as it is stored.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QVBoxLayout, QWidget

from crmmigrator_gui.engine.errors import MigratorError
from crmmigrator_gui.engine.progress import CancelToken, ProgressCallback
from crmmigrator_gui.engine.project.store import Project
from crmmigrator_gui.engine.target import connection
from crmmigrator_gui.gui.generated.ui_connect_page import Ui_ConnectPage
from crmmigrator_gui.gui.pages.base import BasePage, hint, set_banner

ORG_AUTH = "client-credentials"


def _test_operation(project: Project, _progress: ProgressCallback, _cancel: CancelToken) -> dict[str, Any]:
    return connection.test_connection(project)


class ConnectPage(BasePage):
    """Choose where records go; secrets only ever reach the keyring."""

    def __init__(self) -> None:
        super().__init__(
            "Connect",
            "Choose the destination. The embedded sandbox needs no account, so you can rehearse the whole "
            "migration before touching the customer's org.",
        )
        self.form = QWidget(self)
        self.ui = Ui_ConnectPage()
        self.ui.setupUi(self.form)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.form)
        hint(self.ui.sandboxHint)
        hint(self.ui.secretHint)
        set_banner(self.ui.messageLabel, "")
        self.ui.orgRadio.toggled.connect(self._mode_changed)
        self.ui.testButton.clicked.connect(self.test_connection)
        self.last_test: dict[str, Any] | None = None
        self._mode_changed()

    @property
    def use_org(self) -> bool:
        return self.ui.orgRadio.isChecked()

    def _mode_changed(self) -> None:
        self.ui.orgFields.setEnabled(self.use_org)
        self.ui.testStatus.setText("")
        set_banner(self.ui.messageLabel, "")

    def initializePage(self) -> None:
        current = connection.settings(self.project)
        remote = current.kind == "remote"
        self.ui.orgRadio.setChecked(remote)
        self.ui.sandboxRadio.setChecked(not remote)
        if remote:
            self.ui.urlEdit.setText(current.url or "")
            self.ui.tenantEdit.setText(current.tenant or "")
            self.ui.clientIdEdit.setText(current.client_id or "")
            self.ui.secretEdit.setPlaceholderText("A secret is already in the keyring; type a new one to replace it")
        self._mode_changed()

    # ------------------------------------------------------------------ storing the connection
    def apply(self) -> bool:
        """Store the chosen connection through the engine; False (with a banner) when it refuses."""
        project = self.project
        current = connection.settings(project)
        try:
            if not self.use_org:
                if current.kind != "embedded":
                    connection.configure(
                        project,
                        "target",
                        url=None,
                        auth="sandbox",
                        tenant=None,
                        client_id=None,
                        token_url=None,
                        username=None,
                        secret=None,
                    )
                return True
            url = self.ui.urlEdit.text().strip().rstrip("/")
            tenant = self.ui.tenantEdit.text().strip() or None
            client_id = self.ui.clientIdEdit.text().strip() or None
            secret = self.ui.secretEdit.text()
            if not url.startswith(("https://", "http://")):
                raise MigratorError("enter the environment URL, for example https://contoso.crm.dynamics.com")
            if not client_id:
                raise MigratorError("enter the client ID of the app registration")
            unchanged = (
                current.kind == "remote"
                and current.url == url
                and current.tenant == tenant
                and current.client_id == client_id
            )
            if unchanged and not secret:
                return True  # the keyring already holds this connection's secret
            connection.configure(
                project,
                "target",
                url=url,
                auth=ORG_AUTH,
                tenant=tenant,
                client_id=client_id,
                token_url=None,
                username=None,
                secret=secret or None,
            )
        except MigratorError as exc:
            set_banner(self.ui.messageLabel, str(exc), "error")
            return False
        finally:
            # The secret leaves the widget as soon as the engine has it (or refused it).
            self.ui.secretEdit.clear()
        set_banner(
            self.ui.messageLabel,
            "Connection saved. The secret is in the OS keyring only." if self.use_org else "",
            "success",
        )
        return True

    # ------------------------------------------------------------------ test connection
    def test_connection(self) -> None:
        if self.runner.busy or not self.apply():
            return
        self.last_test = None
        self.ui.testStatus.setStyleSheet("")
        self.ui.testStatus.setText("Testing the connection…")
        self.runner.start(
            self.state.project_path,
            _test_operation,
            name="connection test",  # type: ignore[arg-type]
            on_finished=self._test_finished,
            on_failed=self._test_failed,
            on_cancelled=self._test_cancelled,
        )

    @Slot(object)
    def _test_finished(self, result: dict[str, Any]) -> None:
        self.last_test = result
        where = "the embedded sandbox" if not self.use_org else result.get("url", "the org")
        self.ui.testStatus.setStyleSheet("color:#1c5e33;")
        self.ui.testStatus.setText(f"✔ Connected to {where} as user {result.get('user_id')}.")

    @Slot(str)
    def _test_failed(self, message: str) -> None:
        self.last_test = {"ok": False, "error": message}
        self.ui.testStatus.setStyleSheet("color:#8a1c12;")
        self.ui.testStatus.setText(f"✖ {message}")

    @Slot()
    def _test_cancelled(self) -> None:
        self.ui.testStatus.setText("Test cancelled.")

    def busy_changed(self, busy: bool) -> None:
        self.ui.testButton.setEnabled(not busy)

    # ------------------------------------------------------------------ QWizardPage
    def isComplete(self) -> bool:
        return not self.runner.busy

    def validatePage(self) -> bool:
        return self.apply()

"""ContentVersion (Salesforce Files, reference §6.1): JSON/base64 and multipart inserts, document + link.

Inserting a ContentVersion creates its ContentDocument (069) unless ``ContentDocumentId`` names an existing
one (then it is a new version), sets ``ContentDocumentId`` on the version, and links the document to
``FirstPublishLocationId`` through a ContentDocumentLink (to the owner when none is given). The bytes live
in the blob table and ``GET …/ContentVersion/{id}/VersionData`` returns them.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
from typing import TYPE_CHECKING, Any

from .catalog import SObject
from .errors import bad

if TYPE_CHECKING:
    from .app import Request, SalesforceSandbox

JSON_LIMIT = 50 * 1024 * 1024  # non-multipart body cap (37.5 MB of base64)


class ContentVersionHook:
    def __init__(self, sb: SalesforceSandbox):
        self.sb = sb
        self._pending: bytes | None = None

    def before_insert(self, values: dict[str, Any]) -> dict[str, Any]:
        raw = values.pop("VersionData", None)
        if raw is None and not values.get("ContentUrl"):
            raise bad("REQUIRED_FIELD_MISSING", "Required fields are missing: [VersionData]", ["VersionData"])
        data = raw if isinstance(raw, bytes) else base64.b64decode(raw) if raw is not None else b""
        if raw is not None and not values.get("PathOnClient"):
            raise bad("REQUIRED_FIELD_MISSING", "Required fields are missing: [PathOnClient]", ["PathOnClient"])
        path = values.get("PathOnClient") or ""
        ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        values.setdefault("Title", path.rsplit(".", 1)[0] if path else "Untitled")
        values.update(
            FileExtension=ext or None,
            FileType=(ext.upper() if ext else "UNKNOWN") if raw is not None else "LINK",
            ContentSize=len(data),
            Checksum=hashlib.md5(data).hexdigest(),
            IsLatest=True,
            VersionData="blob" if raw is not None else None,
        )
        self._pending = data if raw is not None else None
        return values

    def after_insert(self, rid: str, row: dict[str, Any]) -> None:
        sb = self.sb
        if self._pending is not None:
            sb.store.put_blob(rid, self._pending)
            self._pending = None
        doc_obj = sb.catalog.objects["ContentDocument"]
        ver_obj = sb.catalog.objects["ContentVersion"]
        doc_fields = {
            "Title": row.get("Title"),
            "LatestPublishedVersionId": rid,
            "FileType": row.get("FileType"),
            "FileExtension": row.get("FileExtension"),
            "ContentSize": row.get("ContentSize"),
            "Description": row.get("Description"),
        }
        doc_id = row.get("ContentDocumentId")
        if doc_id:
            doc = sb.records.load(doc_obj, doc_id)
            count = 1
            for other in sb.records.iter_rows(
                ver_obj, "json_extract(data,'$.ContentDocumentId')=? AND id!=?", (doc_id, rid)
            ):
                count += 1
                if other.get("IsLatest"):
                    other["IsLatest"] = False
                    sb.store.update(ver_obj, other["Id"], other)
            row["VersionNumber"] = str(count)
            doc.update(doc_fields)
            sb.store.update(doc_obj, doc_id, doc)
        else:
            doc_id = sb.records.insert_values(doc_obj, {**doc_fields, "OwnerId": row.get("OwnerId")})
            row["VersionNumber"] = "1"
            target = row.get("FirstPublishLocationId") or row.get("OwnerId")
            link = sb.catalog.objects["ContentDocumentLink"]
            sb.records.insert_values(
                link,
                {
                    "ContentDocumentId": doc_id,
                    "LinkedEntityId": target,
                    "ShareType": "I" if target == row.get("OwnerId") else "V",
                    "Visibility": "AllUsers",
                },
            )
        row["ContentDocumentId"] = doc_id
        sb.store.update(ver_obj, rid, row)


def multipart_body(sb: SalesforceSandbox, req: Request, obj: SObject) -> dict[str, Any]:
    """Parse ``multipart/form-data``: a JSON part (``entity_content`` or similar) plus the binary part."""
    ctype = req.headers.get("content-type", "")
    msg = email.message_from_bytes(
        f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode() + req.body, policy=email.policy.HTTP
    )
    if not msg.is_multipart():
        raise bad("INVALID_MULTIPART_REQUEST", "Multipart message must include a non-binary part")
    fields: dict[str, Any] | None = None
    binary: tuple[str, bytes] | None = None
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if "json" in (part.get_content_type() or "") or name in ("entity_content", "entity_document"):
            try:
                fields = json.loads(payload)
            except ValueError as exc:
                raise bad("JSON_PARSER_ERROR", f"Invalid JSON in multipart part: {exc}") from exc
        elif name:
            binary = (str(name), payload)
    if fields is None or not isinstance(fields, dict):
        raise bad("INVALID_MULTIPART_REQUEST", "Multipart message must include a non-binary part")
    if binary is not None:
        field = sb.catalog.lookup(obj, binary[0])
        if field is None or field.type != "base64":
            raise bad("INVALID_FIELD", f"No such column '{binary[0]}' on sobject of type {obj.name}", [binary[0]])
        fields[field.name] = base64.b64encode(binary[1]).decode()
    return fields

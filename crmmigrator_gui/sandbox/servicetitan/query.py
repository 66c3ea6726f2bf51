"""List (page/pageSize) and export (continuation token) queries, paged straight from SQLite.

Neither path loads a whole table: lists use ``LIMIT pageSize+1 OFFSET …`` (one extra row tells
``hasMore`` without a count), exports use keyset paging on the store's change ``version``
(``WHERE version > ? ORDER BY version LIMIT …``).

Export semantics (reference §1.2 [C], §1.7, §6.14) and the choices made where they are [I]:

* ``from`` is empty (start of history), a date (rows modified on or after it) or an opaque token;
  tokens are base64url JSON naming the entity and the last version delivered, so they are stable:
  reusing one repeats the same page, and a token from another export is refused with 400.
* Rows come ordered by modification (version). Many seeded rows share one ``modifiedOn`` (the legacy
  import), so equal timestamps straddle page boundaries; resuming by *date* then re-delivers rows.
* ``includeRecentChanges=true`` [I]: the returned token is backed up over the last few (``recent_overlap``,
  default 3, never more than half the page) rows, i.e. the most recently changed ones, so the next call
  repeats them: the duplicates a client must dedupe by ``id`` keeping the highest ``modifiedOn``.
* Soft-deleted rows stay in the export with ``active:false``; every row keeps its export-only fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from .catalog import CREATED_FILTERS, MODIFIED_FILTERS, EntityDef
from .errors import bad_param
from .store import Store, norm_ts, parse_ts

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_BOOL = {"true": True, "false": False}


def _int(query: dict[str, str], name: str, default: int, low: int = 1) -> int:
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_param(name, f"The value '{raw}' is not valid.") from None
    if value < low:
        raise bad_param(name, f"The field {name} must be greater than or equal to {low}.")
    return value


def _bool(query: dict[str, str], name: str) -> bool:
    raw = query.get(name, "").strip().lower()
    if raw and raw not in _BOOL:
        raise bad_param(name, f"The value '{query[name]}' is not valid.")
    return _BOOL.get(raw, False)


def _ts(name: str, raw: str, normalised: bool) -> str:
    try:
        moment = parse_ts(raw)
    except ValueError:
        raise bad_param(name, f"The value '{raw}' is not valid.") from None
    return norm_ts(raw) if normalised else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def shape(ent: EntityDef, data: str | dict[str, Any], *, export: bool) -> dict[str, Any]:
    """A stored row as the list or export endpoint shows it."""
    row = json.loads(data) if isinstance(data, str) else dict(data)
    drop = set(ent.list_hidden) | (set() if export else set(ent.export_only))
    out = {k: v for k, v in row.items() if k not in drop and not k.startswith("_")}
    if not export:
        for path in ent.export_only_nested:
            outer, _, inner = path.partition(".")
            if isinstance(out.get(outer), list):
                out[outer] = [{k: v for k, v in item.items() if k != inner} for item in out[outer]]
    return out


def list_page(store: Store, ent: EntityDef, query: dict[str, str], *, parent: int | None, max_page_size: int,
              clamp: bool) -> dict[str, Any]:
    page = _int(query, "page", 1)
    size = _int(query, "pageSize", 50)
    if size > max_page_size:
        if not clamp:
            raise bad_param("pageSize", f"The field pageSize must be between 1 and {max_page_size}.")
        size = max_page_size
    where, params = ["entity=?"], [ent.name]
    if parent is not None:
        where.append("parent=?")
        params.append(parent)
    if ent.active_filter:
        active = query.get("active", "True").strip().lower()
        if active not in ("true", "false", "any"):
            raise bad_param("active", f"The value '{query['active']}' is not valid. Use True, False or Any.")
        if active != "any":
            where.append("active=?")
            params.append(1 if active == "true" else 0)
    else:
        where.append("active=1")  # list models without ``active`` never show soft-deleted rows
    if query.get("ids", "").strip():
        try:
            ids = [int(x) for x in query["ids"].split(",") if x.strip()]
        except ValueError:
            raise bad_param("ids", f"The value '{query['ids']}' is not valid.") from None
        if len(ids) > 50:
            raise bad_param("ids", "The field ids must have at most 50 values.")
        where.append(f"id IN ({','.join('?' * len(ids))})")
        params += ids
    filters = {**(MODIFIED_FILTERS if ent.has_modified else {}), **(CREATED_FILTERS if ent.has_created else {}),
               **ent.filters}
    for name, (column, op) in filters.items():
        raw = query.get(name, "").strip()
        if not raw:
            continue
        expr = column if not column.startswith("$") else f"json_extract(data,'{column}')"
        if op in (">=", "<"):
            where.append(f"{expr} {op} ?")
            params.append(_ts(name, raw, not column.startswith("$")))
        elif op == "in":
            values = [v.strip() for v in raw.split(",") if v.strip()]
            where.append(f"{expr} IN ({','.join('?' * len(values))})")
            params += [int(v) if v.lstrip("-").isdigit() else v for v in values]
        elif raw.lstrip("-").isdigit():
            where.append(f"{expr} = ?")
            params.append(int(raw))
        else:
            where.append(f"lower({expr}) = lower(?)")
            params.append(raw)
    order = "id ASC"
    if query.get("sort", "").strip():
        raw = query["sort"].strip()
        direction, field = ("DESC", raw[1:]) if raw[0] == "-" else ("ASC", raw.lstrip("+ "))
        columns = {"id": "id", "modifiedon": "modified", "createdon": "created"}
        if field.lower() not in {s.lower() for s in ent.sorts} or field.lower() not in columns:
            raise bad_param("sort", f"Sorting by '{field}' is not supported. Use one of: {', '.join(ent.sorts)}.")
        order = f"{columns[field.lower()]} {direction}, id {direction}"
    sql_where = " AND ".join(where)
    rows = store.query(f"SELECT data FROM rows WHERE {sql_where} ORDER BY {order} LIMIT ? OFFSET ?",
                       [*params, size + 1, (page - 1) * size])
    total = None
    if _bool(query, "includeTotal"):
        total = int(store.query(f"SELECT count(*) FROM rows WHERE {sql_where}", params)[0][0])
    return {"page": page, "pageSize": size, "hasMore": len(rows) > size, "totalCount": total,
            "data": [shape(ent, r[0], export=False) for r in rows[:size]]}


def encode_token(entity: str, position: int, since: str | None) -> str:
    raw = json.dumps({"v": 1, "e": entity, "p": position, "s": since}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(entity: str, token: str) -> tuple[int, str | None]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position, since, owner = int(data["p"]), data.get("s"), data["e"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise bad_param("from", "The continuation token is invalid.") from None
    if owner != entity:
        raise bad_param("from", "The continuation token belongs to a different export.")
    return position, since


def export_page(store: Store, ent: EntityDef, query: dict[str, str], *, page_size: int,
                recent_overlap: int) -> dict[str, Any]:
    start = query.get("from", "").strip()
    position, since = 0, None
    if _DATE.match(start):
        since = _ts("from", start, True)
    elif start:
        position, since = decode_token(ent.name, start)
    where, params = "entity=? AND version>?", [ent.name, position]
    if since:
        where += " AND modified>=?"
        params.append(since)
    rows = store.query(f"SELECT version, data FROM rows WHERE {where} ORDER BY version LIMIT ?",
                       [*params, page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    next_position = rows[-1][0] if rows else position
    if rows and _bool(query, "includeRecentChanges"):
        back = min(recent_overlap, len(rows) // 2)
        if back:
            next_position = rows[-1 - back][0]
    return {"data": [shape(ent, r[1], export=True) for r in rows], "hasMore": has_more,
            "continueFrom": encode_token(ent.name, next_position, since)}

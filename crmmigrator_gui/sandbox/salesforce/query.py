"""SOQL execution: compiles a parsed query to SQL and serves REST ``/query``, ``/queryAll`` and cursors.

Paging (reference §5): pages of 2,000 by default, ``Sforce-Query-Options: batchSize=N`` (200-2,000),
``nextRecordsUrl`` = ``/services/data/vXX.X/query/<0r8 locator>-<offset>``; the locator keeps only the SOQL
and the total, and every page re-runs the compiled SQL with LIMIT/OFFSET so memory stays flat whatever the
table size. ``queryAll`` drops the ``deleted=0`` filter (recycle-bin rows, ``IsDeleted=true``).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from . import ids
from . import values as V
from .catalog import Field, SObject
from .errors import SFError, bad
from .soql import _FIELD_HINT, Path, Query, _dt, error_at, norm_id_literal, parse
from .store import table

if TYPE_CHECKING:
    from .app import Request, SalesforceSandbox

_NUMERIC = {"int", "double", "currency", "percent"}


class Compiled:
    """One SOQL statement bound to the catalog; ``fetch`` runs one page."""

    def __init__(
        self,
        sb: SalesforceSandbox,
        text: str,
        *,
        all_rows: bool = False,
        query: Query | None = None,
        extra_where: tuple[str, list[Any]] | None = None,
    ):
        self.sb, self.text = sb, text
        self.cat = sb.catalog
        self.q = query or parse(text)
        obj = self.cat.get(self.q.obj)
        if obj is None:
            raise error_at(
                text,
                self.q.obj_pos,
                "INVALID_TYPE",
                f"sObject type '{self.q.obj}' is not supported. If you are attempting to use a custom object, "
                "be sure to append the '__c' after the entity name. Please reference your WSDL or the describe "
                "call for the appropriate names.",
            )
        self.obj: SObject = obj
        self._alias = 0
        self.params: list[Any] = []
        self.cols: list[str] = []
        self.layout: list[tuple[Any, ...]] = []
        self.children: list[tuple[str, Compiled, Field]] = []
        self.aggregate = False
        self._select()
        where = [] if all_rows else ["t.deleted=0"]
        if self.q.where is not None:
            where.append(self._cond(self.q.where))
        if extra_where:
            where.append(extra_where[0])
            self.params.extend(extra_where[1])
        self.where = " AND ".join(where) or "1=1"
        order = []
        for path, desc, nulls in self.q.order:
            expr, leaf, _, _ = self._expr(self.obj, path, path.parts, "t")
            if leaf.is_text:
                expr += " COLLATE NOCASE"
            order.append(f"{expr}{' DESC' if desc else ''}{f' NULLS {nulls}' if nulls else ''}")
        order.append("t.seq")
        self.order = ", ".join(order)

    # -- compilation ----------------------------------------------------------------------------------------

    def _error_field(self, path: Path, name: str, obj: SObject) -> SFError:
        return error_at(
            self.text, path.pos, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'. {_FIELD_HINT}"
        )

    def _expr(self, obj: SObject, path: Path, parts: list[str], alias: str) -> tuple[str, Field, list[str], list[str]]:
        """SQL expression for a (dotted) field path -> (expr, leaf field, canonical names, fk exprs per level)."""
        if len(parts) == 1:
            f = self.cat.lookup(obj, parts[0])
            if f is None:
                raise self._error_field(path, parts[0], obj)
            expr = f"{alias}.id" if f.name == "Id" else f"json_extract({alias}.data,'$.{f.name}')"
            return expr, f, [f.name], []
        rel = obj.relationship(parts[0])
        if rel is None or not self.cat.visible(obj, rel):
            raise error_at(
                self.text,
                path.pos,
                "INVALID_FIELD",
                f"Didn't understand relationship '{parts[0]}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
            )
        fk = f"json_extract({alias}.data,'$.{rel.name}')"
        branches: list[tuple[str, str, list[str]]] = []
        leaf: Field | None = None
        names: list[str] = []
        for pname in rel.reference_to:
            parent = self.cat.get(pname)
            if parent is None:
                continue
            self._alias += 1
            a = f"p{self._alias}"
            try:
                inner, leaf_f, sub_names, sub_fks = self._expr(parent, path, parts[1:], a)
            except SFError:
                if len(rel.reference_to) > 1:
                    continue
                raise
            leaf, names = leaf_f, sub_names
            wrap = f"FROM {table(parent)} {a} WHERE {a}.id = {fk})"
            branches.append((parent.key_prefix, f"(SELECT {inner} {wrap}", [f"(SELECT {x} {wrap}" for x in sub_fks]))
        if not branches or leaf is None:
            raise self._error_field(path, parts[-1], self.cat.objects[rel.reference_to[0]])
        if len(branches) == 1:
            expr, deeper = branches[0][1], branches[0][2]
        else:
            head = f"CASE substr({fk},1,3) "
            expr = head + " ".join(f"WHEN '{p}' THEN {s}" for p, s, _ in branches) + " END"
            deeper = [
                head + " ".join(f"WHEN '{p}' THEN {d[i]}" for p, _, d in branches) + " END"
                for i in range(len(branches[0][2]))
            ]
        return expr, leaf, [rel.relationship or rel.name, *names], [fk, *deeper]

    def _col(self, expr: str) -> int:
        self.cols.append(expr)
        return len(self.cols) - 1

    def _select(self) -> None:
        seen: set[str] = set()
        if self.q.count_only:
            return
        for item in self.q.fields:
            if isinstance(item, Query):
                self._child(item)
                continue
            if isinstance(item, tuple):
                _, path, alias = item
                expr, leaf, _, _ = self._expr(self.obj, path, path.parts, "t")
                self.aggregate = True
                self.layout.append(("count", self._col(f"COUNT({expr})"), alias or f"expr{len(self.layout)}"))
                continue
            expr, leaf, names, fks = self._expr(self.obj, item, item.parts, "t")
            key = ".".join(names).lower()
            if key in seen:
                raise bad("MALFORMED_QUERY", f"duplicate field selected: {'.'.join(names)}")
            seen.add(key)
            self.layout.append(("field", names, self._col(expr), leaf, [self._col(x) for x in fks]))
        if self.aggregate and any(entry[0] != "count" for entry in self.layout):
            raise bad("MALFORMED_QUERY", "Field must be grouped or aggregated")

    def _child(self, sub: Query) -> None:
        for other in self.cat.objects.values():
            for f in other.fields.values():
                rel = f.child_relationship
                if rel and rel.lower() == sub.obj.lower() and self.obj.name in f.reference_to:
                    sub.obj = other.name
                    compiled = Compiled(
                        self.sb, self.text, query=sub, extra_where=(f"json_extract(t.data,'$.{f.name}') = ?", [None])
                    )
                    self.children.append((rel, compiled, f))
                    self.layout.append(("child", rel, len(self.children) - 1))
                    return
        raise error_at(
            self.text,
            sub.obj_pos,
            "INVALID_TYPE",
            f"Didn't understand relationship '{sub.obj}' in FROM part of query call. If you are attempting to use "
            "a custom relationship, be sure to append the '__r' after the custom relationship name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        )

    def _literal(self, leaf: Field, value: tuple[str, Any], path: Path) -> Any:
        kind, raw = value
        t = leaf.type
        if kind == "str":
            if t in _NUMERIC or t in ("boolean", "date", "datetime"):
                raise bad(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{leaf.name}' must be of type {t} and should not be "
                    "enclosed in quotes",
                )
            return norm_id_literal(raw) if t in ("id", "reference") else raw
        if kind in ("num", "bool", "date", "datetime") and leaf.is_text:
            raise bad(
                "INVALID_FIELD",
                f"value of filter criterion for field '{leaf.name}' must be of type string and should be enclosed "
                "in quotes",
            )
        if kind == "bool":
            return 1 if raw else 0
        if kind == "date" and t == "datetime":
            return _dt(date.fromisoformat(raw))
        if kind == "datetime" and t == "date":
            return raw[:10]
        return raw

    def _cond(self, c: Any) -> str:
        kind = c[0]
        if kind in ("and", "or"):
            return "(" + f" {kind.upper()} ".join(self._cond(x) for x in c[1]) + ")"
        if kind == "not":
            return f"NOT ({self._cond(c[1])})"
        path: Path = c[1]
        expr, leaf, _, _ = self._expr(self.obj, path, path.parts, "t")
        nocase = " COLLATE NOCASE" if leaf.is_text else ""
        if kind == "cmp":
            op, value = c[2], c[3]
            if value[0] == "null":
                if op not in ("=", "!="):
                    raise bad("MALFORMED_QUERY", "null can only be compared with = or !=")
                return f"{expr} IS {'NOT ' if op == '!=' else ''}NULL"
            if value[0] == "range":
                start, end = value[1]
                lo, hi = (_dt(start), _dt(end)) if leaf.type == "datetime" else (start.isoformat(), end.isoformat())
                self.params.extend([lo, hi] if op in ("=", "!=") else [lo if op in ("<", ">=") else hi])
                return {
                    "=": f"({expr} >= ? AND {expr} < ?)",
                    "!=": f"({expr} IS NULL OR NOT ({expr} >= ? AND {expr} < ?))",
                    "<": f"{expr} < ?",
                    ">=": f"{expr} >= ?",
                    "<=": f"{expr} < ?",
                    ">": f"{expr} >= ?",
                }[op]
            self.params.append(self._literal(leaf, value, path))
            if op == "!=":
                return f"({expr} IS NULL OR {expr} != ?{nocase})"
            return f"{expr} {op} ?{nocase}"
        if kind == "like":
            value = c[2]
            if value[0] != "str":
                raise bad("MALFORMED_QUERY", "LIKE needs a quoted string")
            self.params.append(value[1])
            return f"{expr} LIKE ? ESCAPE '\\'"
        if kind == "in":
            negate, values = c[2], c[3]
            has_null = any(v[0] == "null" for v in values)
            lits = [self._literal(leaf, v, path) for v in values if v[0] != "null"]
            self.params.extend(lits)
            marks = ",".join("?" * len(lits)) or "NULL"
            if negate:
                null_part = f"{expr} IS NOT NULL AND " if has_null else f"{expr} IS NULL OR "
                return f"({null_part}({expr}{nocase}) NOT IN ({marks}))"
            return f"(({expr}{nocase}) IN ({marks}){f' OR {expr} IS NULL' if has_null else ''})"
        if kind == "includes":
            negate, values = c[2], c[3]
            parts = []
            for v in values:
                wanted = [p.strip() for p in str(v[1]).split(";") if p.strip()]
                checks = []
                for w in wanted:
                    self.params.append(w)
                    checks.append(f"instr(';' || lower({expr}) || ';', ';' || lower(?) || ';') > 0")
                parts.append("(" + " AND ".join(checks or ["0"]) + ")")
            test = "(" + " OR ".join(parts) + ")"
            return f"({expr} IS NULL OR NOT {test})" if negate else test
        raise bad("MALFORMED_QUERY", "unsupported condition")

    # -- execution ------------------------------------------------------------------------------------------

    def total(self) -> int:
        rows = self.sb.store.execute(f"SELECT COUNT(*) FROM {table(self.obj)} t WHERE {self.where}", self.params)
        count = max(0, rows[0][0] - self.q.offset)
        return min(count, self.q.limit) if self.q.limit is not None else count

    def fetch(self, start: int, size: int, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        if self.q.limit is not None:
            size = min(size, self.q.limit - start)
        if size <= 0 or (not self.cols and not self.children):
            return []
        cols = ", ".join([*self.cols, "t.id"])
        sql = f"SELECT {cols} FROM {table(self.obj)} t WHERE {self.where} ORDER BY {self.order} LIMIT ? OFFSET ?"
        return self.sb.store.execute(sql, [*(params or self.params), size, self.q.offset + start])

    def aggregate_record(self) -> dict[str, Any]:
        row = self.sb.store.execute(
            f"SELECT {', '.join(self.cols)} FROM {table(self.obj)} t WHERE {self.where}", self.params
        )[0]
        out: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
        for _, idx, alias in self.layout:
            out[alias] = row[idx]
        return out

    def records(self, rows: list[tuple[Any, ...]], version: str) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            rid = row[-1]
            rec: dict[str, Any] = {
                "attributes": {
                    "type": self.obj.name,
                    "url": f"/services/data/v{version}/sobjects/{self.obj.name}/{rid}",
                }
            }
            for entry in self.layout:
                if entry[0] == "child":
                    rec[entry[1]] = self._child_records(entry[2], rid, version)
                    continue
                _, names, idx, leaf, fk_idx = entry
                node = rec
                for level, rel_name in enumerate(names[:-1]):
                    fk = row[fk_idx[level]]
                    if rel_name not in node:
                        target = self.sb.catalog.object_for_id(fk) if fk else None
                        node[rel_name] = (
                            {
                                "attributes": {
                                    "type": target.name,
                                    "url": f"/services/data/v{version}/sobjects/{target.name}/{fk}",
                                }
                            }
                            if target
                            else None
                        )
                    if node[rel_name] is None:
                        break
                    node = node[rel_name]
                else:
                    node[names[-1]] = V.output(leaf, self._typed(leaf, row[idx]), rec["attributes"]["url"])
            out.append(rec)
        return out

    @staticmethod
    def _typed(leaf: Field, value: Any) -> Any:
        if leaf.type == "boolean" and value is not None:
            return bool(value)
        return value

    def _child_records(self, index: int, parent_id: str, version: str) -> dict[str, Any] | None:
        _, child, _ = self.children[index]
        params = [*child.params[:-1], parent_id]
        rows = child.fetch(0, 2000, params)
        if not rows:
            return None
        return {"totalSize": len(rows), "done": True, "records": child.records(rows, version)}

    def csv_columns(self) -> list[str]:
        return [".".join(e[1]) for e in self.layout if e[0] == "field"]

    def csv_values(self, row: tuple[Any, ...]) -> list[str]:
        out = []
        for entry in self.layout:
            value = self._typed(entry[3], row[entry[2]])
            if entry[3].type == "datetime" and isinstance(value, str):
                value = value[:23] + "Z"
            out.append(V.csv_text(value))
        return out


def batch_size(req: Request) -> int:
    opts = req.headers.get("sforce-query-options", "")
    for part in opts.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "batchsize" and value.strip().isdigit():
            return max(200, min(2000, int(value)))
    return 2000


def handle(sb: SalesforceSandbox, req: Request, rest: list[str], all_rows: bool) -> tuple[int, dict, Any]:
    if req.method != "GET":
        raise SFError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,HEAD")
    if rest:
        return _more(sb, req, rest[0])
    text = req.query.get("q", "")
    if not text.strip():
        raise bad("MALFORMED_QUERY", "unexpected token: '<EOF>'")
    compiled = Compiled(sb, text, all_rows=all_rows)
    if compiled.q.count_only:
        return 200, {}, {"totalSize": compiled.total(), "done": True, "records": []}
    if compiled.aggregate:
        return 200, {}, {"totalSize": 1, "done": True, "records": [compiled.aggregate_record()]}
    total = compiled.total()
    size = batch_size(req)
    records = compiled.records(compiled.fetch(0, size), req.version)
    body: dict[str, Any] = {"totalSize": total, "done": len(records) >= total, "records": records}
    if not body["done"]:
        cursor = ids.make_id("0r8", sb.store.next_counter())
        sb.store.execute(
            "INSERT INTO _cursors VALUES (?,?,?,?,?,?,0)", (cursor, text, int(all_rows), total, size, req.version)
        )
        body["nextRecordsUrl"] = f"/services/data/v{req.version}/query/{cursor}-{len(records)}"
    return 200, {}, body


def _more(sb: SalesforceSandbox, req: Request, locator: str) -> tuple[int, dict, Any]:
    cursor, _, pos = locator.rpartition("-")
    rows = sb.store.execute("SELECT soql, all_rows, total, batch FROM _cursors WHERE id=?", (cursor,))
    if not rows or not pos.isdigit():
        raise bad("INVALID_QUERY_LOCATOR", "invalid query locator")
    text, all_rows, total, size = rows[0]
    start = int(pos)
    compiled = Compiled(sb, text, all_rows=bool(all_rows))
    records = compiled.records(compiled.fetch(start, size), req.version)
    end = start + len(records)
    body: dict[str, Any] = {"totalSize": total, "done": end >= total or not records, "records": records}
    if not body["done"]:
        body["nextRecordsUrl"] = f"/services/data/v{req.version}/query/{cursor}-{end}"
    return 200, {}, body

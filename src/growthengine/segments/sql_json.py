"""JSON properties in SQL, on SQLite and PostgreSQL, with the Python evaluator's comparison semantics.

The Python evaluator (``feeds.compare``) compares decoded JSON values: a number equals a number (``True == 1``
too), a string equals only a string, ordering comparisons between a string and a number are false, a missing
property is ``None``. :class:`JsonSql` builds the SQL that gives the same answers from the stored JSON text:
SQLite's ``json_type``/``json_extract``/``json_each``, PostgreSQL's ``jsonb`` operators. Every value is a bound
parameter; property names travel as parameters too (a JSON path on SQLite, a key on PostgreSQL).

Conversions the SQL cannot do exactly run as small SQLite functions registered on the connection
(:func:`register_sqlite_functions`): a text to a number as Python's ``float()`` reads it, a float to its Python
``str()``, an instant to its local day in a time zone with daylight saving.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from growthengine.segments.feeds import zone_for
from growthengine.segments.model import Compare

DAY_US = 86_400_000_000
TYPED = "<typed>"
"""The document of a property read from the typed events table (``sql_typed``) rather than from a payload."""
_PY_NUMBER = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


class NotCompilable(Exception):
    """This condition cannot be expressed in SQL with the evaluator's exact semantics (use the Python rebuild)."""


class Params:
    """Bound parameters of one statement, named ``:p0``, ``:p1``, ..."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f":{name}"


@dataclass(frozen=True)
class JValue:
    """One JSON value in SQL: its type (the dialect's type names), and its text and number forms."""

    typ: str
    text: str
    num: str  # a number for JSON numbers and booleans (1/0); undefined for other types


def _py_float(text: Any) -> float | int:
    try:
        return float(text) if isinstance(text, str) else 0
    except ValueError:
        return 0


def _py_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _local_day(ts_us: int, zone: str) -> int:
    instant = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts_us)
    return instant.astimezone(zone_for(zone)).date().toordinal()


def register_sqlite_functions(connection: sqlite3.Connection) -> None:
    connection.create_function("ge_float", 1, _py_float, deterministic=True)
    connection.create_function("ge_pystr", 1, _py_str, deterministic=True)
    connection.create_function("ge_local_day", 2, _local_day, deterministic=True)


@lru_cache(maxsize=512)
def fixed_offset_us(zone: str) -> int | None:
    """The zone's UTC offset if it has been the same since 1970 and stays so to 2040 (Asia/Bangkok), else None."""
    tz = zone_for(zone)
    offsets = {dt.datetime(year, month, 15, tzinfo=dt.UTC).astimezone(tz).utcoffset()
               for year in range(1970, 2041) for month in (1, 4, 7, 10)}
    if len(offsets) != 1:
        return None
    offset = offsets.pop()
    return None if offset is None else int(offset.total_seconds() * 1_000_000)


class JsonSql:
    """The JSON dialect of one database."""

    def __init__(self, dialect: str, params: Params, typed: dict[str, int] | None = None) -> None:
        self.pg = dialect == "postgresql"
        self.p = params
        self.typed = typed or {}
        """Properties read from the typed events table's row ``e`` (``sql_typed``) when the document is ``TYPED``."""
        self.NUM = "('number')" if self.pg else "('integer', 'real')"
        self.NUM_OR_BOOL = "('number', 'boolean')" if self.pg else "('integer', 'real', 'true', 'false')"
        self.STR = "'string'" if self.pg else "'text'"
        self.C = ' COLLATE "C"' if self.pg else ""  # code-point order, as Python compares strings

    def doc(self, column: str) -> str:
        """A stored JSON text column as a document."""
        return f"CAST({column} AS jsonb)" if self.pg else column

    def _column(self, name: str) -> str:
        if name not in self.typed:
            raise NotCompilable(f"property {name!r} is not among the typed columns")
        return f"e.c{self.typed[name]}"

    def prop(self, doc: str, name: str) -> JValue:
        if doc == TYPED:
            column = self._column(name)
            typ, text = f"{column}_t", f"{column}_v"
            if not self.pg:
                return JValue(typ, text, text)
            num = (f"(CASE WHEN {typ} = 'number' THEN CAST({text} AS numeric) "
                   f"WHEN {typ} = 'boolean' THEN (CASE WHEN {text} = 'true' THEN 1 ELSE 0 END) END)")
            return JValue(typ, text, num)
        if self.pg:
            key = f"CAST({self.p.add(name)} AS text)"
            typ, text = f"jsonb_typeof({doc} -> {key})", f"({doc} ->> {key})"
            num = (f"(CASE WHEN {typ} = 'number' THEN CAST({text} AS numeric) "
                   f"WHEN {typ} = 'boolean' THEN (CASE WHEN {text} = 'true' THEN 1 ELSE 0 END) END)")
            return JValue(typ, text, num)
        path = self.p.add(self.path(name))
        raw = f"json_extract({doc}, {path})"
        return JValue(f"json_type({doc}, {path})", raw, raw)

    @staticmethod
    def path(name: str) -> str:
        if '"' in name or "\\" in name:
            raise NotCompilable(f"property name {name!r}")
        return f'$."{name}"'

    def elements(self, doc: str, name: str) -> tuple[str, JValue]:
        """A FROM item over the elements of an array property (none when it is not an array), and an element."""
        if doc == TYPED:
            column = self._column(name)
            if self.pg:
                source = (f"jsonb_array_elements(CASE WHEN {column}_t = 'array' THEN CAST({column}_v AS jsonb) "
                          "ELSE CAST('[]' AS jsonb) END) AS je(v)")
                typ, text = "jsonb_typeof(je.v)", "(je.v #>> '{}')"
                num = (f"(CASE WHEN {typ} = 'number' THEN CAST({text} AS numeric) "
                       f"WHEN {typ} = 'boolean' THEN (CASE WHEN {text} = 'true' THEN 1 ELSE 0 END) END)")
                return source, JValue(typ, text, num)
            return f"json_each(CASE WHEN {column}_t = 'array' THEN {column}_v END) AS je", JValue(
                "je.type", "je.value", "je.value")
        if self.pg:
            key = f"CAST({self.p.add(name)} AS text)"
            source = (f"jsonb_array_elements(CASE WHEN jsonb_typeof({doc} -> {key}) = 'array' THEN {doc} -> {key} "
                      "ELSE CAST('[]' AS jsonb) END) AS je(v)")
            typ, text = "jsonb_typeof(je.v)", "(je.v #>> '{}')"
            num = (f"(CASE WHEN {typ} = 'number' THEN CAST({text} AS numeric) "
                   f"WHEN {typ} = 'boolean' THEN (CASE WHEN {text} = 'true' THEN 1 ELSE 0 END) END)")
            return source, JValue(typ, text, num)
        path = self.p.add(self.path(name))
        # json_each of a scalar yields the scalar itself: only arrays may pass.
        source = f"json_each(CASE WHEN json_type({doc}, {path}) = 'array' THEN json_extract({doc}, {path}) END) AS je"
        return source, JValue("je.type", "je.value", "je.value")

    def is_nullish(self, v: JValue) -> str:
        return f"({v.typ} IS NULL OR {v.typ} = 'null')"

    def is_scalar(self, v: JValue) -> str:
        return f"({v.typ} IS NOT NULL AND {v.typ} NOT IN ('null', 'array', 'object'))"

    def key(self, v: JValue) -> str:
        """Python's ``str(value)`` of a scalar (NULL for null or missing); arrays and objects as JSON text."""
        if self.pg:
            return (f"(CASE WHEN {v.typ} = 'boolean' THEN (CASE WHEN {v.text} = 'true' THEN 'True' ELSE 'False' END) "
                    f"WHEN {v.typ} = 'null' THEN NULL ELSE {v.text} END)")
        return (f"(CASE {v.typ} WHEN 'text' THEN {v.text} WHEN 'integer' THEN CAST({v.text} AS TEXT) "
                f"WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' WHEN 'real' THEN ge_pystr({v.text}) "
                f"WHEN 'null' THEN NULL ELSE {v.text} END)")

    def summand(self, v: JValue) -> str:
        """What ``sum`` adds for a value: numbers as they are, booleans 0, numeric text as ``float()``, else 0."""
        if self.pg:
            text = self.p.add(_PY_NUMBER)
            return (f"(CASE WHEN {v.typ} = 'number' THEN CAST({v.text} AS numeric) WHEN {v.typ} = 'string' AND "
                    f"{v.text} ~ {text} THEN CAST(trim({v.text}) AS numeric) ELSE 0 END)")
        return (f"(CASE WHEN {v.typ} IN ('integer', 'real') THEN {v.text} "
                f"WHEN {v.typ} = 'text' THEN ge_float({v.text}) ELSE 0 END)")

    def float_flag(self, v: JValue) -> str:
        """1 when the summand is a float in Python (PostgreSQL's numeric does not say; SQLite's SUM does)."""
        if not self.pg:
            return "0"
        text = self.p.add(_PY_NUMBER)
        return (f"(CASE WHEN {v.typ} = 'number' AND {v.text} ~ '[.eE]' THEN 1 WHEN {v.typ} = 'string' AND "
                f"{v.text} ~ {text} THEN 1 ELSE 0 END)")

    # Comparisons --------------------------------------------------------------------------------------

    def _eq(self, v: JValue, operand: Any) -> str:
        if operand is None:
            return self.is_nullish(v)
        if isinstance(operand, bool):
            return f"({v.typ} IN {self.NUM_OR_BOOL} AND {v.num} = {self.p.add(int(operand))})"
        if isinstance(operand, (int, float)):
            return f"({v.typ} IN {self.NUM_OR_BOOL} AND {v.num} = {self.p.add(operand)})"
        if isinstance(operand, str):
            return f"({v.typ} = {self.STR} AND {v.text} = {self.p.add(operand)})"
        raise NotCompilable(f"equality with {type(operand).__name__}")

    def compare(self, v: JValue, cmp: Compare, doc: str | None = None, name: str | None = None) -> str:
        """``feeds.compare(value, cmp)`` as a SQL predicate that is never NULL."""
        op, operand = cmp.op, cmp.operand
        if op == "eq":
            return _flag(self._eq(v, operand))
        if op == "ne":
            return f"NOT {_flag(self._eq(v, operand))}"
        if op == "exists":
            if not isinstance(operand, bool):
                raise NotCompilable("exists with a value that is not true or false")
            return f"NOT {_flag(self.is_nullish(v))}" if operand else _flag(self.is_nullish(v))
        if op in ("gt", "gte", "lt", "lte"):
            symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            if isinstance(operand, (bool, int, float)):
                return _flag(f"({v.typ} IN {self.NUM_OR_BOOL} AND {v.num} {symbol} {self.p.add(operand)})")
            if isinstance(operand, str):
                return _flag(f"({v.typ} = {self.STR} AND {v.text}{self.C} {symbol} {self.p.add(operand)})")
            if operand is None:
                return "(1 = 0)"
            raise NotCompilable(f"{op} with {type(operand).__name__}")
        if op in ("in", "not_in"):
            if not isinstance(operand, (list, tuple)):
                raise NotCompilable(f"{op} with {type(operand).__name__}")
            if any(isinstance(o, (list, tuple, dict)) for o in operand):
                raise NotCompilable(f"{op} with nested values")
            inside = " OR ".join(self._eq(v, o) for o in operand if o is not None) or "1 = 0"
            found = _flag(f"(NOT {_flag(self.is_nullish(v))} AND ({inside}))")
            return found if op == "in" else f"(NOT {_flag(self.is_nullish(v))} AND NOT {found})"
        if op == "contains":
            if doc is None or name is None:
                raise NotCompilable("contains on a computed value")
            return self._contains(v, operand, doc, name)
        raise NotCompilable(f"comparison {op}")

    def _contains(self, v: JValue, operand: Any, doc: str, name: str) -> str:
        if isinstance(operand, (list, tuple, dict)):
            raise NotCompilable("contains with a list or mapping")
        parts = []
        if isinstance(operand, str):
            op = self.p.add(operand)
            position = f"strpos({v.text}, {op})" if self.pg else f"instr({v.text}, {op})"
            parts.append(f"({v.typ} = {self.STR} AND {position} > 0)")
            if doc == TYPED:
                column = self._column(name)
                keys = (f"jsonb_exists(CAST({column}_v AS jsonb), {op})" if self.pg else
                        f"EXISTS (SELECT 1 FROM json_each({column}_v) AS jk WHERE jk.key = {op})")
                parts.append(f"({v.typ} = 'object' AND {keys})")
            elif self.pg:
                parts.append(f"({v.typ} = 'object' AND jsonb_exists({doc} -> CAST({self.p.add(name)} AS text), {op}))")
            else:
                path = self.p.add(self.path(name))
                parts.append(f"({v.typ} = 'object' AND EXISTS (SELECT 1 FROM json_each({doc}, {path}) AS jk "
                             f"WHERE jk.key = {op}))")
        source, element = self.elements(doc, name)
        parts.append(f"({v.typ} = 'array' AND EXISTS (SELECT 1 FROM {source} WHERE {self._eq(element, operand)}))")
        return _flag("(" + " OR ".join(parts) + ")")

    def compare_number(self, value: str, cmp: Compare) -> str:
        """``feeds.compare`` for an aggregate (a number, never NULL where this is used) as a SQL predicate."""
        op, operand = cmp.op, cmp.operand
        numeric = isinstance(operand, (int, float))
        symbols = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        if op in symbols:
            if numeric:
                x = self.p.add(int(operand) if isinstance(operand, bool) else operand)
                return f"({value} {symbols[op]} {x})"
            return "(1 = 1)" if op == "ne" else "(1 = 0)"  # a number never equals or orders with a non-number
        if op == "exists":
            return "(1 = 1)" if operand is True else "(1 = 0)"
        if op in ("in", "not_in") and isinstance(operand, (list, tuple)):
            numbers = [o for o in operand if isinstance(o, (int, float))]
            inside = " OR ".join(f"{value} = {self.p.add(o)}" for o in numbers) or "1 = 0"
            return f"({inside})" if op == "in" else f"(NOT ({inside}))"
        if op == "contains":
            return "(1 = 0)"
        raise NotCompilable(f"{op} on an aggregate")


def _flag(predicate: str) -> str:
    """A predicate made never NULL (NULL counts as false, as a failed comparison does in Python)."""
    return f"(CASE WHEN {predicate} THEN 1 ELSE 0 END = 1)"


def local_day_sql(json: JsonSql, ts: str, zone_expr: str, zones: list[str], fallback: str) -> str:
    """The local day number of instant ``ts`` in the zone named by ``zone_expr`` (one of ``zones``)."""

    def day(zone: str) -> str:
        offset = fixed_offset_us(zone)
        if offset is not None:
            shifted = f"({ts} + {json.p.add(offset)})"
            if json.pg:  # floor division in whole numbers (bigint division truncates; numeric's is slow per row)
                return f"({shifted} / {DAY_US} - CASE WHEN {shifted} % {DAY_US} < 0 THEN 1 ELSE 0 END)"
            return f"(({shifted}) / {DAY_US})"
        name = json.p.add(zone_for(zone).key)
        if json.pg:
            return f"(CAST((to_timestamp({ts} / 1000000.0) AT TIME ZONE {name}) AS date) - DATE '1970-01-01')"
        return f"ge_local_day({ts}, {name})"

    cases = " ".join(f"WHEN {json.p.add(z)} THEN {day(z)}" for z in zones)
    return f"(CASE {zone_expr} {cases} ELSE {day(fallback)} END)" if cases else day(fallback)

"""How read-model rows are stored: one PostgreSQL table per row type.

A ``Table`` is made from a fold's row type (a ``NamedTuple``, fields in column order,
SQL types from the field annotations) and its indexes, so the row type is the one
declaration of the DDL, the bulk writes and the JSON shapes.
Every table starts with ``patient_id``: the runner replaces a person's rows by deleting
them and writing the fold's new ones. Tables are created without their indexes when a
rebuild loads them (bulk load first, index once), and with them otherwise; every
statement is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import UnionType
from typing import Annotated, Any, get_args, get_origin, get_type_hints
from uuid import UUID

from psycopg import Copy, Cursor, sql

TS = "timestamptz"

# SQL column type -> the type name binary COPY dumps it as.
COPY_TYPES = {
    "uuid": "uuid",
    "text": "text",
    "integer": "int4",
    "bigint": "int8",
    "boolean": "bool",
    "date": "date",
    "timestamptz": "timestamptz",
    "double precision": "float8",
    "jsonb": "jsonb",
}


@dataclass(frozen=True, slots=True)
class Index:
    suffix: str
    columns: str  # SQL column list, e.g. "patient_id, seq"
    unique: bool = False
    where: str | None = None


def person_key(*columns: str) -> Index:
    """A per-person table's unique key: ``patient_id``, then the columns that tell one
    person's rows apart (none: one row per person). One spelling of the convention, so
    every table's key index is named and ordered alike."""
    return Index("key", ", ".join(("patient_id", *columns)), unique=True)


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    fields: tuple[str, ...]
    types: tuple[str, ...]
    indexes: tuple[Index, ...]

    @property
    def copy_types(self) -> list[str]:
        """The columns' types as binary COPY is told them (``Copy.set_types``)."""
        return [COPY_TYPES[t.replace(" NOT NULL", "")] for t in self.types]

    def create(self, name: str | None = None, *, with_indexes: bool = True) -> list[sql.Composed]:
        """DDL for this table (under ``name`` when building a replacement)."""
        target = name or self.name
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f), sql.SQL(t))
            for f, t in zip(self.fields, self.types, strict=True)
        )
        statements = [
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(target), cols)
        ]
        if with_indexes:
            statements.extend(self.create_indexes(target))
        return statements

    def create_indexes(self, name: str | None = None) -> list[sql.Composed]:
        target = name or self.name
        out: list[sql.Composed] = []
        for index in self.indexes:
            text = "CREATE {unique}INDEX IF NOT EXISTS {index} ON {table} ({columns}){where}"
            out.append(
                sql.SQL(text).format(
                    unique=sql.SQL("UNIQUE " if index.unique else ""),
                    index=sql.Identifier(f"{target}_{index.suffix}"),
                    table=sql.Identifier(target),
                    columns=sql.SQL(index.columns),
                    where=sql.SQL(f" WHERE {index.where}" if index.where else ""),
                )
            )
        return out

    def copy_statement(self, name: str | None = None) -> sql.Composed:
        """Binary COPY: the C dumpers format UUIDs, times and numbers several times
        faster than text COPY does, and the server parses them faster too."""
        return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(name or self.name), sql.SQL(", ").join(map(sql.Identifier, self.fields))
        )

    @contextmanager
    def copy(self, cursor: Cursor[Any], name: str | None = None) -> Iterator[Copy]:
        """An open COPY into this table (or ``name``), ready for ``write_row``."""
        with cursor.copy(self.copy_statement(name)) as copy:
            copy.set_types(self.copy_types)
            yield copy

    def copy_rows(
        self, cursor: Cursor[Any], rows: Iterable[Sequence[Any]], name: str | None = None
    ) -> int:
        """Write rows with COPY (every batch and every rebuild)."""
        n = 0
        with self.copy(cursor, name) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n

    def delete_people(
        self, cursor: Cursor[Any], people: Sequence[UUID], name: str | None = None
    ) -> None:
        cursor.execute(
            sql.SQL("DELETE FROM {} WHERE patient_id = ANY(%s)").format(
                sql.Identifier(name or self.name)
            ),
            (list(people),),
        )


# Python type of a row field -> its column's SQL type. ``X | None`` is nullable, any
# other field NOT NULL; ``Annotated[X, "sql type"]`` says the column's type outright.
SQL_TYPES: dict[Any, str] = {
    UUID: "uuid",
    str: "text",
    int: "integer",
    bool: "boolean",
    float: "double precision",
    date: "date",
    datetime: TS,
}
BIGINT = "bigint NOT NULL"
JSONB = "jsonb"  # nullable: an empty list is stored as it is, never refused
Position = Annotated[int, BIGINT]  # a ledger position


def sql_types(row: Any) -> dict[str, str]:
    """Each field of a ``NamedTuple`` row type and its column's SQL type (``SQL_TYPES``)."""
    out: dict[str, str] = {}
    for field, hint in get_type_hints(row, include_extras=True).items():
        if get_origin(hint) is Annotated:
            out[field] = hint.__metadata__[0]
            continue
        args = get_args(hint)
        nullable = isinstance(hint, UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if nullable else hint
        if base not in SQL_TYPES:
            raise TypeError(f"{row.__name__}.{field}: no SQL type for {hint!r}; annotate it")
        out[field] = SQL_TYPES[base] + ("" if nullable else " NOT NULL")
    return out


def table(name: str, row: Any, *spec: dict[str, str] | Index) -> Table:
    """A table for a ``NamedTuple`` row type: the columns are its fields in order, typed
    from their annotations (``sql_types``), so the row is the one declaration of the
    table. A dict of ``{field: SQL type}`` before the indexes is still accepted and must
    name every field."""
    fields = tuple(row._fields)
    given = [s for s in spec if isinstance(s, dict)]
    indexes = tuple(s for s in spec if isinstance(s, Index))
    types = given[0] if given else sql_types(row)
    missing = set(fields) ^ set(types)
    if missing:
        raise ValueError(f"{name}: SQL types do not match the row fields: {sorted(missing)}")
    return Table(name, fields, tuple(types[f] for f in fields), indexes)


def jsonable(value: Any) -> Any:
    """A row value as JSON: UUIDs as strings, times in UTC ISO-8601, tuples as lists."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def as_dict(row: Any) -> dict[str, Any]:
    """A fold's row (``NamedTuple``) as a JSON-ready dict."""
    return {k: jsonable(v) for k, v in row._asdict().items()}

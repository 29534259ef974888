"""SQL on the PostgreSQL connections the service's operator declared
(``[services.sql.NAME]``). A plugin names a connection; the host holds its
URL and password, and the plugin never sees them.

Build with ``--with sql``; the operator grants it with a
``[services.sql.NAME]`` table in the service's ``[[services]]`` entry (a
plugin importing this module is refused at load without one).

    from orizuru import sql
    admin = sql.Connection("admin")
    rows = admin.query(
        "SELECT datname, pg_database_size(datname) AS bytes FROM pg_database WHERE datname = $1",
        "orders",
    )
    for row in rows:
        name = row.require("datname")
        size = row.parse("bytes", int) or 0
    role = sql.quote_identifier("orders_app")
    password = sql.quote_literal("n0t-in-the-url")
    admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD {password}")

Every call runs one statement on a connection of the service's pool, in a
transaction of its own: ``SET``, temporary tables and ``BEGIN`` do not carry
over to the next call. Parameters are bound as text (``None`` is NULL, a
bool is ``true``/``false``), which the server reads as the type it infers for
each ``$n``. Values come back as text as ``::text`` writes them; a column of
another type is refused until the statement casts it (``created_at::text``).
A failure raises :class:`SqlError`, an :class:`orizuru.Failed` (500) whose
sentence names the connection; look at ``.code`` for the SQLSTATE of a
refusal (``42710``: the role already exists).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, TypeVar

from ._capability import Err, bindings, outside
from ._errors import Failed

_wit = bindings("orizuru_service_sql_0_1_0", "sql", "sql", "a [services.sql.NAME] table")

T = TypeVar("T")


def _sql():
    if _wit is None:
        raise outside("sql")
    return _wit


class SqlError(Failed):
    """A statement that gave no answer, and on which connection.

    ``kind`` is ``no-such-connection``, ``connection-failed``,
    ``query-failed``, ``unsupported-type`` or ``timeout``; for
    ``query-failed``, ``code``, ``detail`` and ``hint`` are PostgreSQL's.
    """

    def __init__(self, connection: str, kind: str, message: str, code: Optional[str] = None,
                 detail: Optional[str] = None, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.connection = connection
        self.kind = kind
        self.code = code
        self.detail = detail
        self.hint = hint


def _error(connection: str, err: Err) -> SqlError:
    case = err.value
    name = type(case).__name__
    if name.endswith("QueryFailed"):
        db = case.value
        sentence = (
            f'PostgreSQL refused a statement on SQL connection "{connection}": {db.message} (SQLSTATE {db.code})'
        )
        if db.detail is not None:
            sentence += f"; {db.detail}"
        if db.hint is not None:
            sentence += f"; hint: {db.hint}"
        return SqlError(connection, "query-failed", sentence, db.code, db.detail, db.hint)
    kinds = {
        "NoSuchConnection": "no-such-connection",
        "ConnectionFailed": "connection-failed",
        "UnsupportedType": "unsupported-type",
        "Timeout": "timeout",
    }
    kind = next((value for key, value in kinds.items() if name.endswith(key)), "connection-failed")
    return SqlError(connection, kind, str(case.value))


def _param(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        raise Failed("an SQL parameter is bytes; bind text (decode it, or encode it as hex with '\\x' || $1)")
    return str(value)


class Row:
    """One row: its values (text, or ``None`` for NULL) by column name."""

    __slots__ = ("_columns", "_values")

    def __init__(self, columns: list[str], values: list[Optional[str]]) -> None:
        self._columns = columns
        self._values = values

    def get(self, column: str) -> Optional[str]:
        """The value of ``column``; ``None`` when it is NULL. A column the
        query did not select is the plugin's mistake, answered as an error."""
        try:
            index = self._columns.index(column)
        except ValueError:
            raise Failed(
                f'the query\'s rows have no column "{column}" (they have {", ".join(self._columns)}); '
                "select it, or read another"
            ) from None
        return self._values[index] if index < len(self._values) else None

    __getitem__ = get

    def require(self, column: str) -> str:
        """The value of ``column``, which must not be NULL."""
        value = self.get(column)
        if value is None:
            raise Failed(f'column "{column}" of the query\'s row is NULL where a value was expected')
        return value

    def parse(self, column: str, kind: Callable[[str], T]) -> Optional[T]:
        """The value of ``column`` read by ``kind`` (``int``, ``float``, or
        ``bool``, which reads PostgreSQL's ``t``/``true``); ``None`` when NULL."""
        text = self.get(column)
        if text is None:
            return None
        try:
            if kind is bool:
                if text in ("t", "true"):
                    return True  # type: ignore[return-value]
                if text in ("f", "false"):
                    return False  # type: ignore[return-value]
                raise ValueError("not a boolean")
            return kind(text)
        except ValueError as err:
            raise Failed(
                f'column "{column}" of the query\'s row holds {text!r}, which cannot be read as '
                f"{getattr(kind, '__name__', kind)}: {err}"
            ) from None

    def as_dict(self) -> dict[str, Optional[str]]:
        return dict(zip(self._columns, self._values))

    def __repr__(self) -> str:
        return f"Row({self.as_dict()!r})"


class Rows:
    """The rows a query answered."""

    def __init__(self, columns: list[str], rows: list[list[Optional[str]]]) -> None:
        #: The columns' names, in order.
        self.columns = columns
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Row]:
        return (Row(self.columns, values) for values in self._rows)

    def __getitem__(self, index: int) -> Row:
        return Row(self.columns, self._rows[index])

    def first(self) -> Optional[Row]:
        """The first row, if any."""
        return Row(self.columns, self._rows[0]) if self._rows else None


class Connection:
    """A connection the operator declared as ``[services.sql.<name>]``.
    Nothing is checked until a statement runs."""

    def __init__(self, name: str) -> None:
        self.name = name

    named = classmethod(lambda cls, name: cls(name))

    def query(self, statement: str, *params: Any) -> Rows:
        """Runs one statement and answers its rows."""
        try:
            result = _sql().query(self.name, statement, [_param(p) for p in params])
        except Err as err:
            raise _error(self.name, err) from None
        return Rows(list(result.columns), [list(row) for row in result.rows])

    def execute(self, statement: str, *params: Any) -> int:
        """Runs one statement and answers how many rows it changed."""
        try:
            return _sql().execute(self.name, statement, [_param(p) for p in params])
        except Err as err:
            raise _error(self.name, err) from None


def quote_identifier(name: str) -> str:
    """``name`` quoted as an identifier: ``we"ird`` -> ``"we""ird"``."""
    return _sql().quote_identifier(name)


def quote_literal(value: str) -> str:
    """``value`` quoted as a string literal: ``it's`` -> ``'it''s'``."""
    return _sql().quote_literal(value)

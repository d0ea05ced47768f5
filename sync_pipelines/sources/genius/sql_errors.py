"""MariaDB/MySQL errors in the project's one vocabulary (errors.py): wait, retry, or fail.

The server's error number decides, as an HTTP status does for the REST sources:

- AUTH (1045 access denied, 1044/1142/1143 no rights, 1227): fail fast, never retried.
- RATE LIMITED (1040 too many connections, 1203/1226 per-user limits): waited out with
  backoff plus jitter (no Retry-After exists), counted as 429s.
- TRANSIENT (client 2002/2003/2006/2013/2055: cannot connect, server gone, connection lost
  or reset; 1205 lock wait timeout, 1213 deadlock, 1053 shutdown in progress, 1927
  connection killed): retried with backoff and jitter.
- PERMANENT (any other server error: 1064 syntax, 1054 unknown column, 1146 no such
  table, ...): the same query gets the same answer; the message names the table.
- A protocol hiccup without an error number (a cut or garbled packet): malformed, a few
  retries then permanent.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from sync_pipelines.errors import (
    MalformedResponseError,
    RateLimited,
    SourceAuthError,
    SourcePermanentError,
    TransientError,
)

AUTH_CODES = frozenset({1044, 1045, 1142, 1143, 1227})
RATE_LIMIT_CODES = frozenset({1040, 1203, 1226})
TRANSIENT_CODES = frozenset(
    {1053, 1158, 1159, 1160, 1161, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055}
)


def error_code(exc: BaseException) -> int | None:
    """The MariaDB error number of a driver error (wrapped by SQLAlchemy or not)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0]
    return None


def server_message(exc: BaseException) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    args = getattr(orig, "args", ())
    if len(args) >= 2:
        return f"{args[0]} {args[1]}"
    return f"{type(orig).__name__}: {orig}"


def translate(exc: BaseException, where: str, table: str | None) -> Exception:
    """The project error for a failed statement. `where` names source and connection."""
    code = error_code(exc)
    answer = server_message(exc)
    about = f" reading table '{table}'" if table else ""
    if code in AUTH_CODES:
        return SourceAuthError(
            f"{where}: the database refused the credentials{about} ({answer}); check the "
            "password the registry names and the user's SELECT grant"
        )
    if code in RATE_LIMIT_CODES:
        return RateLimited(None)
    if code in TRANSIENT_CODES:
        return TransientError(f"{where}{about}: {answer}")
    if code is None or code >= 2000:  # client-side: the protocol broke, no server verdict
        return MalformedResponseError(f"{where}{about}: {answer}")
    return SourcePermanentError(f"{where}: SQL error{about} ({answer}; not retried)")

"""The subset of JQL the Jira emulator understands, and Jira's error shape.

Clauses on project, key/issue, id, updated and created (dates read in the account's time
zone, as Jira does) joined by AND, and ORDER BY; anything else is answered with the 400 Jira
gives for a query it cannot parse.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sync_pipelines_sandbox.jira.data import JiraIssue

if TYPE_CHECKING:
    from sync_pipelines_sandbox.jira.api import JiraState


class JiraError(Exception):
    """An error answer in Jira's shape."""

    def __init__(self, status: int, *messages: str):
        super().__init__(messages[0] if messages else str(status))
        self.status = status
        self.body = {"errorMessages": list(messages), "errors": {}}



_TOKEN = re.compile(
    r"""\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(>=|<=|!=|=|>|<|\(|\)|,)|([^\s=!<>(),"']+))"""
)
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_FIELD_ALIASES = {
    "issue": "key",
    "issuekey": "key",
    "key": "key",
    "id": "id",
    "project": "project",
    "updated": "updated",
    "updateddate": "updated",
    "created": "created",
    "createddate": "created",
}
_RANGE_OPS = {">=", ">", "<=", "<"}


@dataclass(frozen=True)
class Clause:
    field: str
    op: str  # "=", "in", or a range operator
    values: tuple  # project keys, issue ids, or epoch ms


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...]
    order: tuple[tuple[str, bool], ...]  # (field, ascending)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise JiraError(400, f"Error in the JQL Query: unexpected character at {pos}.")
        dq, sq, op, word = match.groups()
        if op is not None:
            out.append(("op", op))
        elif word is not None:
            out.append(("word", word))
        else:
            out.append(("str", (dq if dq is not None else sq).replace('\\"', '"')))
        pos = match.end()
    return out


def parse_jql(text: str, state: JiraState) -> Query:
    """Parse `clause AND clause ... [ORDER BY field [ASC|DESC], ...]` into a Query."""
    tokens = _tokens(text)
    clauses, order, i = [], [], 0

    def word(at: int) -> str:
        return tokens[at][1].lower() if at < len(tokens) and tokens[at][0] == "word" else ""

    while i < len(tokens) and word(i) != "order":
        if clauses:
            if word(i) != "and":
                raise JiraError(
                    400,
                    f"Error in the JQL Query: expecting 'AND' or 'ORDER BY' but got "
                    f"'{tokens[i][1]}' (the sandbox supports AND only).",
                )
            i += 1
        if i >= len(tokens):
            raise JiraError(400, "Error in the JQL Query: the query ends unexpectedly.")
        field = _FIELD_ALIASES.get(tokens[i][1].lower())
        if field is None:
            raise JiraError(
                400,
                f"Field '{tokens[i][1]}' does not exist or you do not have permission to view it.",
            )
        i += 1
        if word(i) == "in":
            values, i = _in_list(tokens, i + 1)
            op = "in"
        else:
            if i + 1 >= len(tokens) or tokens[i][0] != "op":
                raise JiraError(400, "Error in the JQL Query: expecting an operator and a value.")
            op, values = tokens[i][1], [tokens[i + 1][1]]
            i += 2
        clauses.append(_clause(field, op, values, state))
    if i < len(tokens):
        if word(i + 1) != "by":
            raise JiraError(400, "Error in the JQL Query: expecting 'BY' after 'ORDER'.")
        i += 2
        while i < len(tokens):
            name = _FIELD_ALIASES.get(word(i))
            if name not in ("updated", "created", "key", "id"):
                raise JiraError(400, f"Not able to sort using field '{tokens[i][1]}'.")
            ascending = True
            i += 1
            if word(i) in ("asc", "desc"):
                ascending = word(i) == "asc"
                i += 1
            order.append((name, ascending))
            if i < len(tokens) and tokens[i] == ("op", ","):
                i += 1
    return Query(tuple(clauses), tuple(order))


def _in_list(tokens: list[tuple[str, str]], i: int) -> tuple[list[str], int]:
    """The values of `( a, b, ... )` starting at token i, and the index after `)`."""
    if i >= len(tokens) or tokens[i] != ("op", "("):
        raise JiraError(400, "Error in the JQL Query: expecting '(' after IN.")
    values, i = [], i + 1
    while i < len(tokens) and tokens[i] != ("op", ")"):
        if tokens[i] != ("op", ","):
            values.append(tokens[i][1])
        i += 1
    if i >= len(tokens):
        raise JiraError(400, "Error in the JQL Query: expecting ')' to close IN.")
    return values, i + 1


def _clause(field: str, op: str, values: list[str], state: JiraState) -> Clause:
    site = state.site
    if field == "project":
        if op not in ("=", "in"):
            raise JiraError(400, f"The operator '{op}' is not supported by the 'project' field.")
        keys = []
        for value in values:
            project = next(
                (
                    p
                    for p in site.projects
                    if value.lower() in (p.key.lower(), p.name.lower(), state.project_id(p))
                ),
                None,
            )
            if project is None:
                raise JiraError(400, f"The value '{value}' does not exist for the field 'project'.")
            keys.append(project.key)
        return Clause(field, "in", tuple(keys))
    if field in ("key", "id"):
        if op not in ("=", "in"):
            raise JiraError(400, f"The operator '{op}' is not supported by the '{field}' field.")
        searchable = {i.key for i in site.searchable()}
        ids, unknown = [], []
        for value in values:
            issue = site.by_id.get(value) if field == "id" else site.find(value)
            if issue is None or issue.key not in searchable:
                unknown.append(value)
            else:
                ids.append(issue.id)
        if unknown:  # Jira names every value it rejects, one message each
            raise JiraError(
                400,
                *(f"An issue with key '{v}' does not exist for field '{field}'." for v in unknown),
            )
        return Clause("id", "in", tuple(ids))
    if op not in _RANGE_OPS | {"="}:
        raise JiraError(400, f"The operator '{op}' is not supported by the '{field}' field.")
    return Clause(field, op, (_jql_date(values[0], field, state.tz),))


def _jql_date(value: str, field: str, tz: ZoneInfo) -> int:
    for fmt in _DATE_FORMATS:
        try:
            parsed = dt.datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return int(parsed.replace(tzinfo=tz).timestamp() * 1000)
    raise JiraError(
        400,
        f"Date value '{value}' for field '{field}' is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
        "format e.g. '-5d', '4w 2d'.",
    )


def matches(issue: JiraIssue, clause: Clause) -> bool:
    if clause.field == "project":
        return issue.project.key in clause.values
    if clause.field == "id":
        return issue.id in clause.values
    value = issue.updated_ms if clause.field == "updated" else issue.created_ms
    bound = clause.values[0]
    return {
        ">=": value >= bound,
        ">": value > bound,
        "<=": value <= bound,
        "<": value < bound,
        "=": value == bound,
    }[clause.op]


def sort_key(issue: JiraIssue, order: tuple[tuple[str, bool], ...], projects: list[str]):
    """Numeric tuple in the query's order (DESC negated), ids breaking ties."""
    out = []
    for field, ascending in order or (("id", False),):
        if field == "key":
            values = (projects.index(issue.project.key), issue.number)
        elif field == "id":
            values = (int(issue.id),)
        else:
            values = (issue.updated_ms if field == "updated" else issue.created_ms,)
        out.extend(v if ascending else -v for v in values)
    out.append(int(issue.id))
    return tuple(out)

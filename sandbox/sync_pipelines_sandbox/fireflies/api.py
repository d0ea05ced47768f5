"""Fireflies GraphQL emulator: `POST /graphql` serving `transcripts(...)` and `transcript(id:)`.

Real GraphQL on the way in: graphql-core parses and validates each query against the subset of
Fireflies' schema below (unknown fields fail as they would there), coerces the variables and
arguments; the answer is projected from the company's meetings with exactly the selected fields
(aliases and fragments included). Fireflies' conventions: Bearer API key, `limit` at most 50,
newest meetings first, offset paging by `skip`, errors as
`{"errors": [{"message", "code", "friendly", "extensions": {"code", "status", ...}}]}`.
A deleted meeting (`FirefliesState.delete_meeting`) is simply absent: no longer listed, and
`transcript(id:)` answers `object_not_found`.
A meeting still processing (see FirefliesData.add_meeting's `ready_at`) is listed with
`meeting_info.summary_status` "processing" (Fireflies' documented MeetingInfo values:
processing, processed, failed, skipped), no sentences and no summary; UNCONFIRMED: exactly
which fields Fireflies leaves empty meanwhile.
UNCONFIRMED (no vendor reference found): whether fromDate/toDate bounds are inclusive (here
both are), the default limit (here 50), the HTTP status of an invalid key (here 200 with an
`auth_failed` error; the knobs' "401" fault answers HTTP 401) and the unit of a rate-limit
error's `extensions.metadata.retryAfter` (here epoch milliseconds, when the call may resume).

Knob routes are the GraphQL operations, "transcripts" and "transcript". A knob route is chosen
before the body is read, so it comes from the `X-Apollo-Operation-Name` header (which Apollo's
clients send and the source's client sends with its operation named after the top-level field);
requests without it count as "graphql".
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    parse,
    validate,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.language import FragmentDefinitionNode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines import clock
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.fireflies.data import FirefliesData

SANDBOX_FIREFLIES_API_KEY = "ff-sandbox-api-key"
MAX_LIMIT = 50
OPERATION_HEADER = "x-apollo-operation-name"
HELP_URL = "https://docs.fireflies.ai/miscellaneous/error-codes#"
STATUS_OF = {
    "too_many_requests": 429,
    "auth_failed": 401,
    "forbidden": 403,
    "object_not_found": 404,
    "internal_server_error": 500,
}

SCHEMA = build_schema(
    """
    scalar DateTime

    type Query {
      transcripts(fromDate: DateTime, toDate: DateTime, limit: Int, skip: Int): [Transcript]
      transcript(id: String!): Transcript
    }

    type Transcript {
      id: ID!
      title: String
      date: Float
      dateString: String
      duration: Float
      privacy: String
      organizer_email: String
      host_email: String
      participants: [String]
      fireflies_users: [String]
      meeting_attendees: [MeetingAttendee]
      speakers: [Speaker]
      sentences: [Sentence]
      summary: Summary
      transcript_url: String
      meeting_link: String
      calendar_id: String
      meeting_info: MeetingInfo
    }

    type MeetingInfo {
      fred_joined: Boolean
      silent_meeting: Boolean
      summary_status: SummaryStatus
    }

    enum SummaryStatus {
      processing
      processed
      failed
      skipped
    }

    type MeetingAttendee {
      displayName: String
      email: String
      phoneNumber: String
      name: String
      location: String
    }

    type Speaker {
      id: ID
      name: String
    }

    type Sentence {
      index: Int
      speaker_name: String
      speaker_id: Int
      text: String
      raw_text: String
      start_time: Float
      end_time: Float
    }

    type Summary {
      keywords: [String]
      action_items: String
      overview: String
      short_summary: String
    }
    """
)


class FirefliesError(Exception):
    """An error as Fireflies reports it inside the GraphQL `errors` list."""

    def __init__(self, code: str, message: str, **metadata: Any):
        super().__init__(message)
        self.code = code
        self.metadata = metadata

    def to_json(self, path: list[str] | None = None) -> dict:
        extensions: dict[str, Any] = {
            "code": self.code,
            "status": STATUS_OF.get(self.code, 400),
            "helpUrls": [HELP_URL + self.code],
        }
        if self.metadata:
            extensions["metadata"] = self.metadata
        error = {
            "message": str(self),
            "code": self.code,
            "friendly": True,
            "extensions": extensions,
        }
        if path:
            error["path"] = path
        return error


def _rate_limited(retry_after_s: float) -> FirefliesError:
    resume_ms = int((clock.now_epoch() + retry_after_s) * 1000)
    return FirefliesError(
        "too_many_requests",
        "Too many requests. Please retry after some time.",
        retryAfter=resume_ms,
    )


class FirefliesState:
    """What the emulator serves (the company's meetings) and the GraphQL-level faults to come."""

    def __init__(self, company: Company, api_key: str = SANDBOX_FIREFLIES_API_KEY):
        self.company = company
        self.data = FirefliesData.of(company)
        self.valid_keys = {api_key}
        self._pending: deque[FirefliesError] = deque()
        self._lock = threading.Lock()

    def delete_meeting(self, meeting_id: str) -> None:
        """The owner deletes a meeting: it leaves every listing, `transcript(id)` answers
        object_not_found, and nothing else tells (Fireflies keeps no trace)."""
        self.data.delete(meeting_id)

    def set_api_key(self, api_key: str) -> None:
        """Make `api_key` the only valid one (a rotated or revoked key)."""
        self.valid_keys = {api_key}

    def inject_error(self, code: str, count: int = 1, retry_after_s: float = 1.0) -> None:
        """Answer the next `count` queries with HTTP 200 and this GraphQL error code."""
        with self._lock:
            for _ in range(count):
                if code == "too_many_requests":
                    self._pending.append(_rate_limited(retry_after_s))
                else:
                    self._pending.append(FirefliesError(code, f"Injected {code} error"))

    def next_injected(self) -> FirefliesError | None:
        with self._lock:
            return self._pending.popleft() if self._pending else None


# ------------------------------------------------------------------ resolvers
def _invalid(name: str, message: str) -> FirefliesError:
    return FirefliesError(
        "invalid_arguments",
        "Invalid argument(s) were provided",
        fields=[{"name": name, "message": message}],
    )


def _date_arg(args: Mapping[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _invalid(name, f"{name} must be a Date instance")
    return int(parsed.timestamp() * 1000)


def _transcripts(state: FirefliesState, args: Mapping[str, Any]) -> list[dict]:
    limit = MAX_LIMIT if args.get("limit") is None else args["limit"]
    skip = args.get("skip") or 0
    if not 1 <= limit <= MAX_LIMIT:
        raise _invalid("limit", f"limit must be between 1 and {MAX_LIMIT}")
    if skip < 0:
        raise _invalid("skip", "skip must not be negative")
    found = state.data.between(_date_arg(args, "fromDate"), _date_arg(args, "toDate"))
    return [state.data.transcript(m) for m in found[skip : skip + limit]]


def _transcript(state: FirefliesState, args: Mapping[str, Any]) -> dict:
    meeting = state.data.meeting(args["id"])
    if meeting is None:
        raise FirefliesError("object_not_found", "Transcript not found", objectType="Transcript")
    return state.data.transcript(meeting)


RESOLVERS = {"transcripts": _transcripts, "transcript": _transcript}


# ------------------------------------------------------------------ execution
class _Projector:
    """Turns stored objects into the selected fields; one plan per field, reused per item."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]):
        self.fragments = fragments
        self.variables = variables

    def plan(self, type_: Any, nodes: list[FieldNode]) -> Any:
        while isinstance(type_, (GraphQLNonNull, GraphQLList)):
            if isinstance(type_, GraphQLList):
                return ("list", self.plan(type_.of_type, nodes))
            type_ = type_.of_type
        if not isinstance(type_, GraphQLObjectType):
            return None
        fields = collect_sub_fields(SCHEMA, self.fragments, self.variables, type_, nodes)
        plan = []
        for key, sub_nodes in fields.items():
            name = sub_nodes[0].name.value
            if name == "__typename":
                plan.append((key, name, ("typename", type_.name)))
            else:
                plan.append((key, name, self.plan(type_.fields[name].type, sub_nodes)))
        return ("object", plan)

    def apply(self, plan: Any, value: Any) -> Any:
        if plan is None:
            return value  # a scalar
        kind, inner = plan
        if kind == "typename":
            return inner
        if value is None:
            return None
        if kind == "list":
            return [self.apply(inner, item) for item in value]
        return {key: self.apply(sub, value.get(name)) for key, name, sub in inner}


def _graphql_error(error: GraphQLError, code: str) -> dict:
    formatted = error.formatted
    formatted["extensions"] = {"code": code}
    return formatted


def execute(state: FirefliesState, payload: Any) -> tuple[int, dict]:
    """One GraphQL request body -> (HTTP status, response body)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return 400, {"errors": [{"message": "POST body must be JSON with a 'query' string",
                                 "extensions": {"code": "BAD_REQUEST"}}]}
    try:
        document = parse(payload["query"])
    except GraphQLError as exc:
        return 400, {"errors": [_graphql_error(exc, "GRAPHQL_PARSE_FAILED")]}
    problems = validate(SCHEMA, document)
    if problems:
        return 400, {"errors": [_graphql_error(e, "GRAPHQL_VALIDATION_FAILED") for e in problems]}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    wanted = payload.get("operationName")
    chosen = [o for o in operations if wanted is None or (o.name and o.name.value == wanted)]
    if len(chosen) != 1 or chosen[0].operation != OperationType.QUERY:
        return 400, {"errors": [{"message": "Provide exactly one query operation (operationName)",
                                 "extensions": {"code": "BAD_REQUEST"}}]}
    operation = chosen[0]
    variables = get_variable_values(
        SCHEMA, operation.variable_definitions, payload.get("variables") or {}
    )
    if isinstance(variables, list):
        return 400, {"errors": [_graphql_error(e, "BAD_USER_INPUT") for e in variables]}
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    projector = _Projector(fragments, variables)
    query_type = SCHEMA.query_type
    data: dict[str, Any] = {}
    errors: list[dict] = []
    top = collect_fields(SCHEMA, fragments, variables, query_type, operation.selection_set)
    for key, nodes in top.items():
        name = nodes[0].name.value
        if name == "__typename":
            data[key] = query_type.name
            continue
        field = query_type.fields[name]
        try:
            value = RESOLVERS[name](state, get_argument_values(field, nodes[0], variables))
        except FirefliesError as exc:
            data[key] = None
            errors.append(exc.to_json(path=[key]))
            continue
        data[key] = projector.apply(projector.plan(field.type, nodes), value)
    return 200, {"data": data, **({"errors": errors} if errors else {})}


# ------------------------------------------------------------------ HTTP
def _unauthorized() -> dict:
    error = FirefliesError("auth_failed", "Invalid API key. Please check your API key.")
    return {"data": None, "errors": [error.to_json()]}


def make_app(state: FirefliesState) -> Starlette:
    async def graphql(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if key not in state.valid_keys:
            return JSONResponse(_unauthorized())
        injected = state.next_injected()
        if injected is not None:
            return JSONResponse({"data": None, "errors": [injected.to_json()]})
        try:
            payload = json.loads(await request.body())
        except ValueError:
            payload = None
        status, body = execute(state, payload)
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])


def _route_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == OPERATION_HEADER.encode():
            return value.decode("latin-1").strip().lower() or "graphql"
    return "graphql"


def _fault(code: str, message: str) -> dict:
    return {"data": None, "errors": [FirefliesError(code, message).to_json()]}


_FAULTS = {
    "429": (429, _fault("too_many_requests", "Too many requests. Please retry after some time.")),
    "401": (401, _fault("auth_failed", "Invalid API key. Please check your API key.")),
    "500": (500, _fault("internal_server_error", "Internal server error")),
    "503": (503, _fault("internal_server_error", "Service temporarily unavailable")),
}

EMULATOR = Emulator(
    name="fireflies",
    port_offset=7,
    make_state=lambda company, options: FirefliesState(company),
    make_app=make_app,
    route_of=_route_of,
    fault_body=_FAULTS.__getitem__,
    client_url=lambda root: root,
    env=lambda url, state: {
        "FIREFLIES_API_KEY": SANDBOX_FIREFLIES_API_KEY,
        "FIREFLIES_BASE_URL": url,
    },
)

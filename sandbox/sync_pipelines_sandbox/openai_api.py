"""OpenAI emulator: `POST /v1/embeddings` and `POST /v1/chat/completions` with OpenAI's
limits and error shapes.

Embeddings are feature-hashed bags of lowercase words, L2-normalised: deterministic, free, and
meaningful enough for retrieval tests (texts sharing words score close). The openai SDK asks
for base64 unless told otherwise, so both encodings are served.

Chat completions answer a call-insights extraction: with a `json_schema` (or `json_object`)
`response_format` the content is the JSON of exactly the facts the user turns' text states
(`insight_terms.facts_in`, the ground truth planted by the conversation emulators) and its
`sentiment`, so tests measure an extractor's recall, not only its shape. Usage is counted like
the embeddings'. `OpenAIState.inject_chat` makes the next answers a refusal
(`message.refusal`) or content that is not JSON; 429s and timeouts come from the knobs (route
"chat.completions").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
import zlib
from collections import deque
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines import clock
from sync_pipelines_sandbox import insight_terms
from sync_pipelines_sandbox.emulator import Emulator

SANDBOX_OPENAI_KEY = "sk-sandbox"
MODELS = {  # name -> (native dimensions, accepts `dimensions`)
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
CHAT_MODELS = {  # name -> context window (tokens)
    "gpt-4o-mini": 128_000,
    "gpt-4o": 128_000,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1": 1_047_576,
}
CHAT_FAULTS = ("refusal", "bad_json")
REFUSAL = "I'm sorry, but I can't help with that request."
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")


def count_tokens(text: str) -> int:
    """Approximate tokens: one per word and one per punctuation mark, at least one.

    This is `max(1, len(re.findall(r"\\w+|[^\\w\\s]", text)))`. Real BPE tokenizers split long or
    rare words further, so this undercounts; it only drives the emulator's limits and `usage`.
    Clients must not copy it: their safe offline bound is the UTF-8 byte length.
    """
    return max(1, len(_TOKEN.findall(text)))


def embed(text: str, model: str, dimensions: int) -> np.ndarray:
    """Signed feature hashing of lowercase words into `dimensions` buckets, unit length."""
    words = _WORD.findall(text.lower()) or [text]
    hashes = np.fromiter(
        (zlib.crc32(f"{model}\0{w}".encode()) for w in words), np.int64, len(words)
    )
    signs = np.where(hashes & 0x80000000, 1.0, -1.0)
    vec = np.bincount(hashes % dimensions, weights=signs, minlength=dimensions)
    norm = np.linalg.norm(vec)
    if norm == 0:  # every word cancelled out: fall back to the whole text as one feature
        vec[zlib.crc32(text.encode()) % dimensions] = 1.0
        norm = 1.0
    return (vec / norm).astype(np.float32)


class OpenAIState:
    """Valid keys and what was asked of the emulator (for cost and batching assertions)."""

    def __init__(self, key: str = SANDBOX_OPENAI_KEY):
        self.valid_keys: set[str] = {key}
        self.requests = 0  # embedding requests served
        self.inputs_embedded = 0
        self.tokens = 0
        self.chat_requests = 0  # chat completions answered (refusals and bad JSON included)
        self.chat_prompt_tokens = 0
        self.chat_completion_tokens = 0
        self.chat_context_tokens: int | None = None  # overrides every chat model's window
        self._chat_faults: deque[tuple[str, str | None]] = deque()
        self._lock = threading.Lock()
        # Service time of an embeddings request, on top of the knobs' latency (shared by all
        # the emulators): a fixed part and a part per input, as a real server's grows with
        # the batch. What a benchmark sets to model the provider.
        self.latency_ms = 0.0
        self.latency_per_input_ms = 0.0

    def embeddings_delay_s(self, body: dict) -> float:
        raw = body.get("input")
        inputs = len(raw) if isinstance(raw, list) else 1
        return (self.latency_ms + self.latency_per_input_ms * inputs) / 1000

    def inject_chat(self, kind: str, count: int = 1, containing: str | None = None) -> None:
        """Answer the next `count` chat completions (only those whose user text contains
        `containing`, when given) with a refusal or with content that is not JSON."""
        if kind not in CHAT_FAULTS:
            raise ValueError(f"unknown chat fault {kind!r}; use {CHAT_FAULTS}")
        with self._lock:
            self._chat_faults.extend([(kind, containing)] * count)

    def clear_chat_faults(self) -> None:
        with self._lock:
            self._chat_faults.clear()

    def take_chat_fault(self, text: str) -> str | None:
        with self._lock:
            for n, (kind, containing) in enumerate(self._chat_faults):
                if containing is None or containing in text:
                    del self._chat_faults[n]
                    return kind
        return None

    def record_chat(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.chat_requests += 1
            self.chat_prompt_tokens += prompt_tokens
            self.chat_completion_tokens += completion_tokens

    def record(self, inputs: int, tokens: int) -> None:
        with self._lock:
            self.requests += 1
            self.inputs_embedded += inputs
            self.tokens += tokens


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _inputs(body: dict) -> list[str]:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        raise OpenAIError(
            400,
            "'$.input' is invalid. Please check the API reference: "
            "https://platform.openai.com/docs/api-reference.",
            param="input",
        )
    if not all(isinstance(text, str) for text in inputs):
        raise OpenAIError(
            400, "The sandbox embeds text only: token-id inputs are not supported.", param="input"
        )
    if len(inputs) > MAX_INPUTS:
        raise OpenAIError(
            400,
            f"'$.input' is invalid: {len(inputs)} inputs, the maximum is "
            f"{MAX_INPUTS} inputs per request.",
            param="input",
        )
    if any(text == "" for text in inputs):
        raise OpenAIError(
            400, "'$.input' is invalid: inputs must be non-empty strings.", param="input"
        )
    return inputs


def _dimensions(body: dict, model: str) -> int:
    native, adjustable = MODELS[model]
    requested = body.get("dimensions")
    if requested is None:
        return native
    if not adjustable:
        raise OpenAIError(
            400, "This model does not support specifying dimensions.", param="dimensions"
        )
    if not isinstance(requested, int) or not 1 <= requested <= native:
        raise OpenAIError(
            400,
            f"Invalid value for 'dimensions' = {requested}. Must be between 1 and {native}.",
            param="dimensions",
        )
    return requested


def create_embeddings(state: OpenAIState, body: dict) -> dict:
    """The work of one request: validate like OpenAI, embed, count usage."""
    model = body.get("model")
    if model not in MODELS:
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise OpenAIError(
            400,
            f"Invalid value for 'encoding_format' = {fmt}. Supported values are: "
            "'float' and 'base64'.",
            param="encoding_format",
        )
    inputs, dimensions = _inputs(body), _dimensions(body, model)
    counts = [count_tokens(text) for text in inputs]
    longest = max(counts)
    if longest > MAX_INPUT_TOKENS:
        raise OpenAIError(
            400,
            f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, "
            f"however you requested {longest} tokens ({longest} in your prompt; 0 for the "
            "completion). Please reduce your prompt; or completion length.",
        )
    total = sum(counts)
    if total > MAX_REQUEST_TOKENS:
        raise OpenAIError(
            400,
            f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
            type_="max_tokens_per_request",
            code="max_tokens_per_request",
        )
    data = []
    for index, text in enumerate(inputs):
        vec = embed(text, model, dimensions)
        if fmt == "base64":
            value: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode()
        else:
            value = vec.astype(np.float64).round(8).tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    state.record(len(inputs), total)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": total, "total_tokens": total},
    }


def _content_text(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "\n".join(p["text"] for p in content)
    raise OpenAIError(400, f"Invalid type for '{where}.content'.", param=f"{where}.content")


def _messages(body: dict) -> list[tuple[str, str]]:
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise OpenAIError(400, "Missing required parameter: 'messages'.", param="messages")
    if not raw:
        raise OpenAIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    out = []
    for n, message in enumerate(raw):
        where = f"messages[{n}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise OpenAIError(
                400,
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'tool', 'function' and 'developer'.",
                param=f"{where}.role",
                code="invalid_value",
            )
        out.append((role, _content_text(message.get("content"), where)))
    return out


def _strict_problem(schema: Any, path: str = "") -> str | None:
    """What OpenAI's strict mode refuses in a schema: an object without
    `additionalProperties: false`, or with a property missing from `required`."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or (
        isinstance(schema.get("type"), list) and "object" in schema["type"]
    ):
        if schema.get("additionalProperties") is not False:
            return (
                f"In context=({path}), 'additionalProperties' is required to be supplied and "
                "to be false."
            )
        missing = set(schema.get("properties", {})) - set(schema.get("required", []))
        if missing:
            return (
                f"In context=({path}), 'required' is required to be supplied and to be an "
                f"array including every key in properties. Missing '{min(missing)}'."
            )
    for key, sub in schema.get("properties", {}).items():
        found = _strict_problem(sub, f"{path}'properties', '{key}', ".rstrip(", "))
        if found:
            return found
    return _strict_problem(schema.get("items"), f"{path}'items'") if "items" in schema else None


def _response_format(body: dict) -> str:
    """'text', 'json_object' or 'json_schema', validated like OpenAI."""
    fmt = body.get("response_format") or {"type": "text"}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise OpenAIError(
            400,
            f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and "
            "'text'.",
            param="response_format.type",
            code="invalid_value",
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not spec.get("name"):
            raise OpenAIError(
                400,
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema.name",
                code="missing_required_parameter",
            )
        problem = spec.get("strict") and _strict_problem(spec.get("schema"))
        if problem:
            raise OpenAIError(
                400,
                f"Invalid schema for response_format '{spec['name']}': {problem}",
                param="response_format",
                code="invalid_json_schema",
            )
    return kind


def insights_answer(text: str) -> dict:
    """What a perfect extractor answers for `text` (the conversation emulators' ground truth)."""
    return {
        "insights": [
            {"kind": f.kind, "value": f.value, "quote": f.quote, "owner": f.owner}
            for f in insight_terms.facts_in(text)
        ],
        "sentiment": insight_terms.sentiment(text),
        "sentiment_quote": insight_terms.sentiment_quote(text),
    }


def _cut(content: str, limit: int) -> str:
    """The longest prefix of `content` within `limit` emulator tokens."""
    while content and count_tokens(content) > limit:
        shorter = len(content) * limit // count_tokens(content)
        content = content[: max(0, min(len(content) - 1, shorter))]
    return content


def create_chat_completion(state: OpenAIState, body: dict) -> dict:
    model = body.get("model")
    if model not in CHAT_MODELS:
        raise OpenAIError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    chat, kind = _messages(body), _response_format(body)
    if kind == "json_object" and not any("json" in text.lower() for _, text in chat):
        raise OpenAIError(
            400,
            "'messages' must contain the word 'json' in some form, to use 'response_format' of "
            "type 'json_object'.",
            param="messages",
        )
    prompt_tokens = sum(count_tokens(text) + 3 for _, text in chat)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    context = state.chat_context_tokens or CHAT_MODELS[model]
    if prompt_tokens + (limit or 0) > context:
        raise OpenAIError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + (limit or 0)} tokens ({prompt_tokens} in the messages, "
            f"{limit or 0} in the completion). Please reduce the length of the messages or "
            "completion.",
            param="messages",
            code="context_length_exceeded",
        )
    user_text = "\n".join(text for role, text in chat if role == "user")
    fault = state.take_chat_fault(user_text)
    answer = insights_answer(user_text)
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    finish = "stop"
    if fault == "refusal":
        message["refusal"] = REFUSAL
    elif kind == "text":
        lines = [f"{i['kind']}: {i['value']}" for i in answer["insights"]]
        message["content"] = "\n".join(lines) or "Nothing to report."
    else:
        content = json.dumps(answer, ensure_ascii=False)
        if fault == "bad_json":
            content = content[: len(content) // 2] + " ...\n(I could not finish the JSON)"
        if limit and count_tokens(content) > limit:
            content, finish = _cut(content, limit), "length"
        message["content"] = content
    completion_tokens = count_tokens(message["content"] or message["refusal"] or "")
    state.record_chat(prompt_tokens, completion_tokens)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    return {
        "id": f"chatcmpl-{digest}",
        "object": "chat.completion",
        "created": int(clock.now_epoch()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_sandbox",
    }


def _check_key(state: OpenAIState, request: Request) -> None:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        raise OpenAIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    key = auth[7:].strip()
    if key not in state.valid_keys:
        raise OpenAIError(
            401,
            f"Incorrect API key provided: {key[:3]}***{key[-4:]}. You can find your "
            "API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


def make_app(state: OpenAIState) -> Starlette:
    def endpoint(work):
        async def handle(request: Request) -> JSONResponse:
            try:
                _check_key(state, request)
                try:
                    body = json.loads(await request.body())
                except ValueError:
                    raise OpenAIError(
                        400, "We could not parse the JSON body of your request."
                    ) from None
                if not isinstance(body, dict):
                    raise OpenAIError(400, "The request body must be a JSON object.")
                if work is create_embeddings:
                    delay = state.embeddings_delay_s(body)
                    if delay > 0:
                        await asyncio.sleep(delay)
                return JSONResponse(await run_in_threadpool(work, state, body))
            except OpenAIError as exc:
                return JSONResponse(exc.body, status_code=exc.status)

        return handle

    return Starlette(
        routes=[
            Route("/v1/embeddings", endpoint(create_embeddings), methods=["POST"]),
            Route("/v1/chat/completions", endpoint(create_chat_completion), methods=["POST"]),
        ]
    )


ROUTES = {"/v1/embeddings": "embeddings", "/v1/chat/completions": "chat.completions"}


def _route_of(scope: Scope) -> str:
    return ROUTES.get(scope["path"], scope["path"])


def _fault_body(kind: str) -> tuple[int, dict]:
    errors = {
        "429": (
            429,
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
        ),
        "401": (
            401,
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        ),
        "500": (
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        "503": (503, "The server is overloaded or not ready yet.", "server_error", None),
    }
    status, message, type_, code = errors[kind]
    return status, {"error": {"message": message, "type": type_, "param": None, "code": code}}


EMULATOR = Emulator(
    name="openai",
    port_offset=2,
    make_state=lambda company, options: OpenAIState(),
    make_app=make_app,
    route_of=_route_of,
    fault_body=_fault_body,
    client_url=lambda root: f"{root}/v1",
    env=lambda url, state: {"OPENAI_API_KEY": SANDBOX_OPENAI_KEY, "OPENAI_BASE_URL": url},
)

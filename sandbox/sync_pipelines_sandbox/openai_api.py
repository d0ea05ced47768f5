"""OpenAI embeddings emulator: `POST /v1/embeddings` with OpenAI's limits and error shapes.

Embeddings are feature-hashed bags of lowercase words, L2-normalised: deterministic, free, and
meaningful enough for retrieval tests (texts sharing words score close). The openai SDK asks
for base64 unless told otherwise, so both encodings are served.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import zlib
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope

from sync_pipelines_sandbox.emulator import Emulator

SANDBOX_OPENAI_KEY = "sk-sandbox"
MODELS = {  # name -> (native dimensions, accepts `dimensions`)
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
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
        self._lock = threading.Lock()

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
    async def embeddings(request: Request) -> JSONResponse:
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
            return JSONResponse(await run_in_threadpool(create_embeddings, state, body))
        except OpenAIError as exc:
            return JSONResponse(exc.body, status_code=exc.status)

    return Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])


def _route_of(scope: Scope) -> str:
    return "embeddings" if scope["path"] == "/v1/embeddings" else scope["path"]


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

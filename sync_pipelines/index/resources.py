"""Resources that pick the embedder, the vector store and the chunk ledger from configuration."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from sync_pipelines.index.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_TOKENS, TextSplitter
from sync_pipelines.index.embedders import (
    EMBEDDER_KINDS,
    Embedder,
    HashingEmbedder,
    OpenAIEmbedder,
)
from sync_pipelines.index.ledger import ChunkLedger
from sync_pipelines.index.stores.base import VectorStore
from sync_pipelines.index.tokens import token_counter
from sync_pipelines.index.wordllama import WordLlamaEmbedder
from sync_pipelines.resources import default_data_dir


class EmbedderResource(ConfigurableResource):
    """`wordllama` (local, semantic), `hashing` (local, lexical) or `openai` (any
    OpenAI-compatible server); none of the local ones needs the network."""

    kind: str = Field(default="wordllama", description=" | ".join(EMBEDDER_KINDS))
    dimension: int | None = Field(
        default=None,
        description="Vector size: wordllama 256 (or 64, 128); hashing 384; openai model default.",
    )
    openai_api_key: str | None = Field(default=None, description="Set through EnvVar.")
    openai_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL.")
    openai_model: str = Field(default="text-embedding-3-small")
    chunk_tokens: int = Field(
        default=DEFAULT_CHUNK_TOKENS, description="Chunk budget in tokens, title line included."
    )
    chunk_overlap_tokens: int = Field(
        default=DEFAULT_CHUNK_OVERLAP, description="Tokens consecutive chunks share."
    )

    def build(self) -> Embedder:
        if self.kind == "wordllama":
            return WordLlamaEmbedder(dimension=self.dimension or 256)
        if self.kind == "hashing":
            return HashingEmbedder(dimension=self.dimension or 384)
        if self.kind == "openai":
            if not self.openai_api_key:
                raise ValueError(
                    "embedder 'openai' needs OPENAI_API_KEY (set SYNC_EMBEDDER=wordllama to embed "
                    "locally)"
                )
            return OpenAIEmbedder(
                api_key=self.openai_api_key,
                base_url=self.openai_base_url,
                model=self.openai_model,
                dimensions=self.dimension,
            )
        raise ValueError(f"unknown embedder kind {self.kind!r}: use one of {EMBEDDER_KINDS}")

    def splitter(self) -> TextSplitter:
        return TextSplitter(
            chunk_tokens=self.chunk_tokens,
            overlap_tokens=self.chunk_overlap_tokens,
            counter=token_counter(),
        )


class VectorStoreResource(ConfigurableResource):
    """`lance` (embedded, on local disk) or `pinecone` (index host + namespace)."""

    kind: str = Field(default="lance", description="lance | pinecone")
    lance_path: str = Field(
        default_factory=lambda: str(Path(default_data_dir()) / "vectors"),
        description="Folder of the embedded LanceDB store.",
    )
    pinecone_api_key: str | None = Field(default=None, description="Set through EnvVar.")
    pinecone_host: str | None = Field(default=None, description="Index host (data plane URL).")
    pinecone_namespace: str = Field(default="", description="Namespace inside the index.")
    pinecone_max_workers: int = Field(default=4, description="Upsert requests in flight.")
    batch_documents: int = Field(
        default=500, description="Documents chunked, embedded and upserted per batch."
    )
    max_absent_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "A listing that would delete more than this share of what the index holds in its "
            "range (and at least 20 documents) is refused; 1.0 lets a real mass deletion through."
        ),
    )
    ledger_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the chunk ledger; default: SQLite beside the data dir.",
    )

    def build(self) -> VectorStore:
        if self.kind == "lance":
            from sync_pipelines.index.stores.lance import LanceStore

            return LanceStore(self.lance_path)
        if self.kind == "pinecone":
            if not (self.pinecone_api_key and self.pinecone_host):
                raise ValueError("store 'pinecone' needs PINECONE_API_KEY and PINECONE_HOST")
            from sync_pipelines.index.stores.pinecone import PineconeStore

            return PineconeStore(
                api_key=self.pinecone_api_key,
                host=self.pinecone_host,
                namespace=self.pinecone_namespace,
                max_workers=self.pinecone_max_workers,
            )
        raise ValueError(f"unknown vector store kind {self.kind!r}: use 'lance' or 'pinecone'")

    def ledger(self, store: VectorStore) -> ChunkLedger:
        url = self.ledger_url
        if not url:
            path = Path(default_data_dir()) / "chunk_ledger.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{path}"
        return ChunkLedger(url, store_name=store.name)

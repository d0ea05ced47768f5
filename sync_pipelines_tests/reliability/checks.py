"""What the fault-injection review checked in the final Pinecone namespace: the same vectors
as the reference (none missing, extra or stale), no duplicates, no private chunk for outsiders.

Read from the Pinecone emulator's own state, not through the SDK: the checks must not depend
on the client code they are checking.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from sync_pipelines.documents import ACCESS_ALL
from sync_pipelines.index.resources import EmbedderResource
from sync_pipelines.index.search import search
from sync_pipelines.index.stores.pinecone import PineconeStore
from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_tests.reliability.deployment import DIMENSION, Deployment


@dataclass(frozen=True)
class Comparison:
    """How a namespace differs from the reference namespace (ids, then content)."""

    reference: int
    missing: int
    extra: int
    stale: int
    duplicates: int

    @property
    def exact(self) -> bool:
        return not (self.missing or self.extra or self.stale or self.duplicates)


def compare(sandbox: Sandbox, namespace: str, reference: str) -> Comparison:
    """Vectors of `namespace` against `reference`.

    stale: same id, different metadata or values. duplicates: one (doc_id, chunk text) under
    several ids, or an id that is not `doc_id#chunk_n` of its own metadata.
    """
    expected = sandbox.pinecone.vectors(reference)
    actual = sandbox.pinecone.vectors(namespace)
    stale = sum(
        1
        for vid in expected.keys() & actual.keys()
        if expected[vid][1] != actual[vid][1]
        or not np.allclose(expected[vid][0], actual[vid][0], atol=1e-6)
    )
    seen = Counter((meta.get("doc_id"), meta.get("text")) for _, meta in actual.values())
    misnamed = sum(
        1
        for vid, (_, meta) in actual.items()
        if vid != f"{meta.get('doc_id')}#{meta.get('chunk_n')}"
    )
    return Comparison(
        reference=len(expected),
        missing=len(expected.keys() - actual.keys()),
        extra=len(actual.keys() - expected.keys()),
        stale=stale,
        duplicates=sum(n - 1 for n in seen.values() if n > 1) + misnamed,
    )


@dataclass(frozen=True)
class AclFinding:
    identities: int  # non-member identities that searched
    queries: int
    leaked: int  # private chunks returned to someone outside their access list
    member_hits: int  # control: members found their own private chunk


def private_chunk_leaks(
    sandbox: Sandbox, deployment: Deployment, company: Company, max_identities: int = 7
) -> AclFinding:
    """Search as people outside private channels with those channels' own text as the query.

    The query is the private chunk itself, the strongest bait there is; the search goes
    straight to the emulators (no proxy), as an assistant would after the sync.
    """
    embedder = EmbedderResource(
        kind="openai",
        openai_api_key=deployment.credentials.openai_key,
        openai_base_url=sandbox.openai_base_url,
        dimension=DIMENSION,
    ).build()
    store = PineconeStore(
        api_key=deployment.credentials.pinecone_key,
        host=sandbox.pinecone_host,
        namespace=deployment.namespace,
    )
    private = [
        meta
        for _, meta in sandbox.pinecone.vectors(deployment.namespace).values()
        if ACCESS_ALL not in meta.get("access", [ACCESS_ALL])
    ]
    emails = sorted({p.email.lower() for p in company.people if p.email})
    outsiders = [e for e in emails if any(e not in meta["access"] for meta in private)]
    queries = leaked = member_hits = 0
    for identity in outsiders[:max_identities]:
        for bait in [m for m in private if identity not in m["access"]][:3]:
            queries += 1
            for hit in search(bait["text"], embedder, store, top_k=10, as_user=identity):
                access = hit.metadata.get("access", [])
                if ACCESS_ALL not in access and identity not in access:
                    leaked += 1
            found = search(bait["text"], embedder, store, top_k=10, as_user=bait["access"][0])
            member_hits += any(hit.doc_id == bait["doc_id"] for hit in found)
    return AclFinding(min(len(outsiders), max_identities), queries, leaked, member_hits)

"""The entries of the pending document files, each document's latest version only, streamed.

vector_index applies, between two listings, only the last entry of each doc_id (a document
after a tombstone brings it back, a tombstone after a document deletes it), in the order of
those last entries; a listing judges everything before it. Holding every pending document to
find those last versions would make memory grow with the backlog, so this reads the files
twice: a first pass over the doc_id column alone marks, per row, whether a later row of the
same segment (the stretch between two listings) carries the same doc_id; the second pass
decodes and yields only the unmarked rows, one record batch at a time. What is kept between
the passes is 16 bytes of doc_id hash and a segment number per row, then one flag per row.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence

import numpy as np

from sync_pipelines.documents import DocumentFiles, Entry

Path = str | os.PathLike


def latest_entries(paths: Sequence[Path]) -> Iterator[Entry]:
    """The files' entries in order, superseded versions left out (see the module docstring)."""
    keep = latest_rows(paths)
    for path, kept in zip(paths, keep):
        for entry, wanted in zip(DocumentFiles.iter_entries(path), kept):
            if wanted:
                yield entry


def latest_rows(paths: Sequence[Path]) -> list[np.ndarray]:
    """Per file, a boolean per row: True where the row is applied (a listing, or the last
    row of its doc_id in its segment).

    doc_ids are compared by 128-bit blake2b digests: two distinct ids colliding among even
    millions of rows has a probability below 1e-25, and no id string is held.
    """
    segments, high, low, listing, sizes = [], [], [], [], []
    segment = 0
    for path in paths:
        rows = 0
        for ids, is_listing in DocumentFiles.iter_keys(path):
            digests = np.frombuffer(
                b"".join(
                    hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=16).digest()
                    for i in ids
                ),
                dtype=np.uint64,
            ).reshape(-1, 2)
            marks = np.asarray(is_listing, dtype=bool)
            # A listing closes the segment: rows after it belong to the next one.
            seg = segment + np.cumsum(marks) - marks
            segment += int(marks.sum())
            segments.append(seg.astype(np.int64))
            high.append(digests[:, 0])
            low.append(digests[:, 1])
            listing.append(marks)
            rows += len(ids)
        sizes.append(rows)
    keep = _last_of_each(segments, high, low, listing)
    return np.split(keep, np.cumsum(sizes)[:-1]) if sizes else []


def _last_of_each(segments, high, low, listing) -> np.ndarray:
    if not segments:
        return np.zeros(0, dtype=bool)
    seg, hi, lo = np.concatenate(segments), np.concatenate(high), np.concatenate(low)
    is_listing = np.concatenate(listing)
    # A listing is applied wherever it stands: alone in a group of its own.
    seg = np.where(is_listing, -1 - np.arange(len(seg)), seg)
    # Group rows by (segment, doc_id), in row order within a group: a row is kept when the
    # next row of the sorted order belongs to another group.
    order = np.lexsort((np.arange(len(seg)), lo, hi, seg))
    s, h, l_ = seg[order], hi[order], lo[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (s[1:] != s[:-1]) | (h[1:] != h[:-1]) | (l_[1:] != l_[:-1])
    keep = np.empty(len(order), dtype=bool)
    keep[order] = last
    return keep | is_listing

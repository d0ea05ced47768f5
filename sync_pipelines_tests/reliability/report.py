"""The figures table `make reliability` prints at the end: one row per scenario and seed,
then the faults each fired by kind."""

from __future__ import annotations

from collections import Counter

COLUMNS = (
    ("scenario", "scenario"),
    ("seed", "seed"),
    ("requests", "requests"),
    ("faults", "faults"),
    ("kills", "kills mid-run"),
    ("runs", "runs (failed)"),
    ("store", "missing/extra/stale of ref"),
    ("duplicates", "dup vectors"),
    ("acl", "private leaks/queries"),
    ("extra_inputs", "extra embed inputs"),
    ("rerun", "rerun embedded"),
    ("secrets", "secret hits"),
    ("verdict", "verdict"),
)
ROWS: list[dict[str, str]] = []
FIRED: list[tuple[str, Counter]] = []


def record(fired: Counter | None = None, **row) -> None:
    """One row; `fired` (kind -> count) is listed under the table."""
    ROWS.append({key: str(row.get(key, "-")) for key, _ in COLUMNS})
    if fired is not None:
        FIRED.append((f"{row.get('scenario')} seed {row.get('seed')}", Counter(fired)))
        ROWS[-1]["faults"] = str(sum(fired.values()))


def lines() -> list[str]:
    if not ROWS:
        return []
    widths = {k: max(len(title), *(len(r[k]) for r in ROWS)) for k, title in COLUMNS}
    head = " | ".join(title.ljust(widths[k]) for k, title in COLUMNS)
    out = [head, "-" * len(head)]
    out += [" | ".join(r[k].ljust(widths[k]) for k, _ in COLUMNS) for r in ROWS]
    out.append("faults fired by kind:")
    for label, fired in FIRED + [("all", sum((f for _, f in FIRED), Counter()))]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(fired.items())) or "none"
        out.append(f"  {label}: {kinds}")
    return out

"""docs/adding-a-source.md, followed for a new vendor: a `widgets` source written in a temporary
folder (its source folder, its emulator folder with its contract entry), with no edit anywhere
else, passes the whole contract suite and the error-policy checks like the built-in sources.

The source is small because the shared pieces do the work: SourceResourceBase (URL, pacing,
page size, timeouts), the HTTP client (429, Retry-After, backoff, the error policy), a shared
paginator, SyncWindow.bounds, SyncResult and OptionsModel; its emulator is a route table on the
sandbox's generic paged-collection emulator, fed by the same Company as every other vendor.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]

SOURCE = '''
"""Widgets: every widget changed in the window, one document each."""

from sync_pipelines import clock
from sync_pipelines.documents import Document, Listing
from sync_pipelines.paging import cursor_pages
from sync_pipelines.sources.base import SyncResult
from sync_pipelines.sources.declaration import Cadence, Reconciliation, SourceDeclaration
from sync_pipelines.sources.options import Minutes, OptionsModel
from sync_pipelines.sources.resource import SourceResourceBase


class WidgetsResource(SourceResourceBase):
    ENV_PREFIX = "WIDGETS"
    DEFAULT_BASE_URL = "https://api.widgets.test"
    DOCUMENTED_RATE_PER_S = 2.0
    DEFAULT_PAGE_SIZE = 50
    MAX_PAGE_SIZE = 100

    def client_for(self, connection):
        token = connection.secret("token")
        return self.http_client(connection, headers={"Authorization": f"Bearer {token}"})


class WidgetsOptions(OptionsModel):
    overlap_minutes: Minutes = 1.0


class WidgetsResult(SyncResult):
    widgets_fetched: int = 0


def widgets(run, since):
    return cursor_pages(
        run.client,
        "/v1/widgets",
        items="widgets",
        cursor_out="next_cursor",
        cursor_in="cursor",
        params={"updated_since": int(since), "limit": run.resource.pages()},
    )


def sync(run):
    bounds = run.window.bounds(run.mark, run.options.overlap_minutes * 60)
    result = WidgetsResult(documents=[], high_water_mark=bounds.upper, mode=bounds.mode)
    for widget in widgets(run, bounds.lower):
        result.widgets_fetched += 1
        if bounds.lower <= widget["updated"] < bounds.upper:
            result.documents.append(document(run.connection.id, widget))
    return result


def list_ids(run):
    """Deleted widgets just vanish from the listing: list what exists (a page error raises)."""
    bounds, began = run.window.bounds(None), clock.now_epoch()
    listed = widgets(run, bounds.lower)
    ids = {Document.make_id("widgets", run.connection.id, w["id"]) for w in listed}
    return [Listing(f"widgets:{run.connection.id}:", bounds.lower, bounds.upper, ids, began)]


def document(connection, widget):
    stamp = str(widget["updated"])
    return Document(
        doc_id=Document.make_id("widgets", connection, widget["id"]),
        source="widgets",
        connection=connection,
        title=widget["name"],
        text=widget["text"],
        url=f"https://app.widgets.test/w/{widget['id']}",
        author="",
        created_at=stamp,
        updated_at=stamp,
        timestamp_epoch=float(widget["updated"]),
    )


SOURCE = SourceDeclaration(
    name="widgets",
    resource=WidgetsResource,
    sync=sync,
    options=WidgetsOptions,
    description="Widgets changed in the window.",
    schedule=Cadence(every_minutes=120, at_minute=17, stale_after_minutes=240),
    credentials_env={"token": "WIDGETS_TOKEN"},
    docs_url="https://docs.widgets.test/",
    reconcile=Reconciliation(list_ids=list_ids, at_minute=17),
)
'''

EMULATOR = '''
"""The widgets API: the company's chat messages as widgets, cursor-paged."""

from sync_pipelines_sandbox.emulator import Emulator
from sync_pipelines_sandbox.paged import Auth, Collection, Cursor, PageSize, RouteTable, Since

TOKEN = "widgets-sandbox-token"


class WidgetsState:
    def __init__(self, company):
        self.company = company
        self.tokens = {TOKEN}
        self.deleted = set()

    def widgets(self):
        return [
            {"id": f"{channel.id}-{m.ts}", "name": m.text[:40], "text": m.text,
             "updated": int(float(m.ts))}
            for channel in self.company.chat_channels()
            for m in self.company.channel_messages(channel.id)
            if m.text.strip() and f"{channel.id}-{m.ts}" not in self.deleted
        ]


TABLE = RouteTable(
    routes=(
        Collection(
            path="/v1/widgets",
            route="widgets",
            records=lambda state, filters: state.widgets(),
            render=lambda widget, call: widget,
            since=Since("updated_since", int, field="updated", expects="epoch seconds"),
            paging=Cursor("cursor", report={"next_cursor": "cursor"}),
            items_key="widgets",
            size=PageSize("limit", default=50, most=100),
            order_by=("updated", "id"),
        ),
    ),
    error_body=lambda status, message: {"error": message},
    faults={"429": "slow down", "401": "bad token", "500": "oops", "503": "down"},
    auth=Auth("bearer", lambda state: state.tokens, "bad token"),
)

EMULATOR = Emulator(
    name="widgets",
    port_offset=40,
    make_state=lambda company, options: WidgetsState(company),
    make_app=TABLE.app,
    route_of=TABLE.route_of,
    fault_body=TABLE.fault_body,
    client_url=lambda root: root,
    env=lambda url, state: {"WIDGETS_BASE_URL": url, "WIDGETS_TOKEN": TOKEN},
)
'''

CONTRACT = '''
"""Widgets' place in the source contract."""

from sync_pipelines import clock
from sync_pipelines.sources.registry import source_asset
from sync_pipelines.sources.widgets import WidgetsResource
from sync_pipelines_sandbox.contract import SourceContract
from sync_pipelines_sandbox.widgets import TOKEN, WidgetsState


def expected_ids(company, start, end):
    upper = min(end.timestamp(), clock.now_epoch())
    return {
        f"widgets:acme:{w['id']}"
        for w in WidgetsState(company).widgets()
        if start.timestamp() <= w["updated"] < upper
    }


def delete_record(sandbox):
    before = clock.now_epoch() - 3600
    widget = max(
        (w for w in WidgetsState(sandbox.company).widgets() if w["updated"] < before),
        key=lambda w: w["updated"],
    )
    sandbox.widgets.deleted.add(widget["id"])
    return f"widgets:acme:{widget['id']}"


CONTRACT = SourceContract(
    name="widgets",
    asset=source_asset("widgets"),
    resources=lambda sandbox: {"widgets": WidgetsResource(rate_per_s=0, page_size=20)},
    registry_entry=lambda sandbox, conn_id, env: (
        f"  - id: {conn_id}\\n    source: widgets\\n    base_url: {sandbox.urls['widgets']}\\n"
        f"    credentials: {{token: {env}}}\\n"
    ),
    good_secret=TOKEN,
    list_route="widgets",
    expected_ids=expected_ids,
    rate_budgets={"widgets": 2.0},
    delete_record=delete_record,
    deletion_seen_by="reconcile",
    reconcile_route="widgets",
)
'''


def write_source(root: Path) -> list[Path]:
    files = {
        root / "sources" / "widgets" / "__init__.py": SOURCE,
        root / "sandbox" / "widgets" / "__init__.py": EMULATOR,
        root / "sandbox" / "widgets" / "contract.py": CONTRACT,
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return list(files)


def test_a_source_written_outside_the_repository_passes_the_whole_contract(tmp_path):
    written = write_source(tmp_path / "extra")
    # Only the new folders: the source (one file here) and its emulator with its contract.
    assert sorted(p.relative_to(tmp_path / "extra").as_posix() for p in written) == [
        "sandbox/widgets/__init__.py",
        "sandbox/widgets/contract.py",
        "sources/widgets/__init__.py",
    ]
    env = {**os.environ, "SYNC_TEST_EXTRA_SOURCES": str(tmp_path / "extra")}
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-p", "sync_pipelines_tests.extra_sources",
            "sync_pipelines_tests/test_source_contract.py",
            "sync_pipelines_tests/test_error_policy.py",
            "-k", "widgets",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    # Every contract check (9), its contract-entry check and the error policy's (3).
    assert passed >= 13, summary
    assert "skipped" not in summary and "failed" not in summary, summary


def test_without_its_contract_entry_the_new_source_fails_the_contract_suite(tmp_path):
    write_source(tmp_path / "extra")
    (tmp_path / "extra" / "sandbox" / "widgets" / "contract.py").unlink()
    env = {**os.environ, "SYNC_TEST_EXTRA_SOURCES": str(tmp_path / "extra")}
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-p", "sync_pipelines_tests.extra_sources",
            "sync_pipelines_tests/test_source_contract.py",
            "-k", "every_declared_source_has_a_contract_entry and widgets",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 1, run.stdout[-3000:]
    assert "source 'widgets' has no contract entry" in run.stdout

"""Fixtures of the long reliability suite (`make reliability`), and its figures table."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from sync_pipelines_sandbox.company import Company
from sync_pipelines_sandbox.server import Sandbox
from sync_pipelines_tests.reliability import report
from sync_pipelines_tests.reliability.scenarios import LONG_COMPANY

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture
def long_company() -> Company:
    return Company.generate(**LONG_COMPANY)


@pytest.fixture
def long_sandbox(long_company):
    with Sandbox(company=long_company) as sandbox:
        yield sandbox


@pytest.fixture
def pg_database():
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    name = f"reliability_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(ADMIN_DSN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pytest_terminal_summary(terminalreporter):
    lines = report.lines()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)

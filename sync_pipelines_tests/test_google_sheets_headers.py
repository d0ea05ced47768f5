"""Header rows become warehouse column names (lower snake case, accents folded, duplicates
numbered, blanks named by their column), answered ranges give their first row, and sheet rows
become records (empty rows left out, short rows padded, empty cells null)."""

from sync_pipelines.sources.google_sheets.headers import (
    column_names,
    records,
    snake,
    start_row,
)
from sync_pipelines.sources.google_sheets.sync import GoogleSheetsOptions, parse_cursor, tab_of


def test_messy_headers_become_unique_snake_case_names():
    header = ["Account Name", "account name", "", " Région / Ville ", "Industry ", "Industry",
              "Nº employees", "CA (€)", None, "2024 total", "Straße", "column_c"]  # fmt: skip
    assert column_names(header, 13) == [
        "account_name", "account_name_2", "column_c", "region_ville", "industry",
        "industry_2", "no_employees", "ca", "column_i", "col_2024_total", "strasse",
        "column_c_2", "column_m",
    ]  # fmt: skip


def test_names_never_start_with_an_underscore_and_symbols_alone_are_blank():
    assert snake("_row_hash") == "row_hash"
    assert snake("€ / %") == ""
    assert column_names(["€"], 1) == ["column_a"]
    assert snake("Ümlaut-Überschrift  (neu)") == "umlaut_uberschrift_neu"


def test_the_answered_range_gives_the_first_row():
    assert start_row("'Accounts – raw export'!A5:I1000") == 5
    assert start_row("Leads!$B$3:C") == 3
    assert start_row("Leads") == 1
    assert tab_of("'It''s mine'!A1:C") == "It's mine"
    assert tab_of("Leads") == "Leads"


def test_rows_become_records_with_their_sheet_row_number():
    values = [["Name", "Amount", "Won?"], ["Globex", 12.5, True], [], ["", "", ""],
              ["Initech"], ["Hooli", "", False]]  # fmt: skip
    names, shown, rows = records(values, 3, "sheet-1", "Deals")
    assert names == ["name", "amount", "won"] and shown == ["Name", "Amount", "Won?"]
    got = list(rows)
    assert [r["_row"] for r in got] == [4, 7, 8]
    assert got[0] == {"_spreadsheet_id": "sheet-1", "_sheet": "Deals", "_row": 4,
                      "name": "Globex", "amount": 12.5, "won": True}  # fmt: skip
    assert got[1]["amount"] is None and got[1]["won"] is None
    assert got[2]["won"] is False


def test_options_name_the_index_tabs_as_tables_and_refuse_unknown_ones():
    options = GoogleSheetsOptions.from_connection(
        {"spreadsheets": [{"id": "x", "ranges": ["Leads!A:H"]}], "index_tabs": ["Leads"]},
        "google_sheets",
    )
    assert options.index_tabs == ("leads",) and options.access == "all"
    assert options.value_render == "UNFORMATTED_VALUE"
    for bad in ({}, {"spreadsheets": []}, {"spreadsheets": [{"id": "x"}], "tabs": 1},
                {"spreadsheets": [{"id": "x", "range": "A"}]}):  # fmt: skip
        try:
            GoogleSheetsOptions.from_connection(bad, "google_sheets")
        except ValueError as exc:
            assert "google_sheets option" in str(exc) or "unknown google_sheets" in str(exc)
        else:
            raise AssertionError(f"accepted {bad}")


def test_a_cursor_that_is_not_ours_reads_as_none():
    assert parse_cursor(None) == {} and parse_cursor("not json") == {}
    assert parse_cursor("[1, 2]") == {}
    assert parse_cursor('{"a": "2026-01-01T00:00:00.000Z"}') == {"a": "2026-01-01T00:00:00.000Z"}

"""Tables, JSON, YAML and CSV drawn from the same rows."""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lxcow.output import FORMATS, render_list, render_record, to_data

COLUMNS = [("name", "NAME"), ("state", "STATE"), ("ipv4", "IPV4"), ("aliases", "ALIASES")]
ROWS: list[dict[str, Any]] = [
    {"name": "web1", "state": "RUNNING", "ipv4": "10.0.3.5", "aliases": ["a", "b"], "n": 1},
    {"name": "database-server", "state": "STOPPED", "ipv4": None, "aliases": [], "n": 2},
    {"name": "c", "state": "", "ipv4": "10.0.3.77", "aliases": ["x"], "n": 3},
]


class State(enum.Enum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


@dataclasses.dataclass(frozen=True)
class Thing:
    name: str
    state: State
    aliases: tuple[str, ...]
    size: int | None


def test_formats_are_the_documented_four() -> None:
    assert FORMATS == ("table", "json", "yaml", "csv")


def test_json_parses_back_to_the_rows() -> None:
    text = render_list(ROWS, COLUMNS, "json")

    assert text.endswith("\n")
    assert json.loads(text) == ROWS


def test_yaml_parses_back_to_the_rows_in_key_order() -> None:
    text = render_list(ROWS, COLUMNS, "yaml")

    assert yaml.safe_load(text) == ROWS
    assert text.index("name:") < text.index("state:") < text.index("aliases:")


def test_empty_list_in_json_and_yaml() -> None:
    assert json.loads(render_list([], COLUMNS, "json")) == []
    assert yaml.safe_load(render_list([], COLUMNS, "yaml")) == []


def test_csv_has_a_header_of_keys_and_one_line_per_row() -> None:
    lines = list(csv.reader(io.StringIO(render_list(ROWS, COLUMNS, "csv"))))

    assert lines[0] == ["name", "state", "ipv4", "aliases"]
    assert lines[1] == ["web1", "RUNNING", "10.0.3.5", "a,b"]
    assert lines[2] == ["database-server", "STOPPED", "-", "-"]
    assert lines[3] == ["c", "-", "10.0.3.77", "x"]
    assert len(lines) == 4


def test_table_has_headings_then_rows() -> None:
    lines = render_list(ROWS, COLUMNS, "table").splitlines()

    assert lines[0].split() == ["NAME", "STATE", "IPV4", "ALIASES"]
    assert lines[1].split() == ["web1", "RUNNING", "10.0.3.5", "a,b"]
    assert lines[2].split() == ["database-server", "STOPPED", "-", "-"]
    assert lines[3].split() == ["c", "-", "10.0.3.77", "x"]
    assert len(lines) == 4


def test_table_columns_are_aligned() -> None:
    lines = render_list(ROWS, COLUMNS, "table").splitlines()

    for heading in ("STATE", "IPV4", "ALIASES"):
        start = lines[0].index(heading)
        for line in lines[1:]:
            assert line[start - 2:start] == "  ", (heading, line)
            assert line[start] != " ", (heading, line)


def test_table_has_no_trailing_spaces() -> None:
    rows: list[dict[str, Any]] = [{"name": "a", "state": "RUNNING", "ipv4": None, "aliases": []}]

    for line in render_list(rows, COLUMNS, "table").splitlines():
        assert line == line.rstrip()


def test_table_of_no_rows_is_the_heading_line() -> None:
    assert render_list([], COLUMNS, "table") == "NAME  STATE  IPV4  ALIASES\n"


def test_table_shows_booleans_as_yes_and_no() -> None:
    rows = [{"k": True}, {"k": False}]

    assert render_list(rows, [("k", "K")], "table").splitlines()[1:] == ["yes", "no"]


def test_missing_keys_are_shown_as_dash() -> None:
    assert render_list([{}], [("name", "NAME")], "table").splitlines()[1] == "-"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_ends_with_a_newline(fmt: str) -> None:
    assert render_list(ROWS, COLUMNS, fmt).endswith("\n")


def test_record_as_table_aligns_values() -> None:
    text = render_record({"name": "web1", "description": "", "ipv4": None, "tags": ["a"]},
                         "table")

    assert text.splitlines() == [
        "name:        web1",
        "description: -",
        "ipv4:        -",
        "tags:        a",
    ]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_record_round_trips(fmt: str) -> None:
    record = {"name": "web1", "size": 12, "aliases": ["a"], "ipv4": None}
    text = render_record(record, fmt)

    assert (json.loads(text) if fmt == "json" else yaml.safe_load(text)) == record


def test_record_as_csv_is_a_header_and_a_line() -> None:
    lines = list(csv.reader(io.StringIO(render_record({"name": "web1", "ipv4": None}, "csv"))))

    assert lines == [["name", "ipv4"], ["web1", "-"]]


def test_to_data_turns_dataclasses_enums_and_tuples_into_plain_data() -> None:
    data = to_data(Thing("web1", State.RUNNING, ("a", "b"), None))

    assert data == {"name": "web1", "state": "RUNNING", "aliases": ["a", "b"], "size": None}
    assert json.loads(json.dumps(data)) == data


def test_to_data_recurses_into_lists_and_dicts() -> None:
    data = to_data({"things": [Thing("x", State.STOPPED, (), 5)], 1: (State.RUNNING,)})

    assert data == {
        "things": [{"name": "x", "state": "STOPPED", "aliases": [], "size": 5}],
        "1": ["RUNNING"],
    }


def test_to_data_keeps_scalars() -> None:
    assert [to_data(v) for v in (1, "s", None, 2.5, True)] == [1, "s", None, 2.5, True]


def test_to_data_rows_render_in_every_format() -> None:
    rows = [to_data(Thing("web1", State.RUNNING, ("a",), 3))]
    columns = [("name", "NAME"), ("state", "STATE"), ("aliases", "ALIASES")]

    assert json.loads(render_list(rows, columns, "json")) == rows
    assert yaml.safe_load(render_list(rows, columns, "yaml")) == rows
    assert render_list(rows, columns, "table").splitlines()[1].split() == ["web1", "RUNNING", "a"]


def test_to_data_turns_paths_into_strings() -> None:
    assert to_data({"path": Path("/var/lib/lxcow")}) == {"path": "/var/lib/lxcow"}

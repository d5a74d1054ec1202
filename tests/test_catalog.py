"""Self-tests of the requirement catalog data (suites/catalog.toml) and its loader."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conformance.catalog import (
    LEVELS,
    SEVERITY,
    Catalog,
    CatalogError,
    Requirement,
    default_catalog_path,
    load_catalog,
    parse_catalog,
)

#: The row IDs of the Markdown catalog that suites/catalog.toml was transcribed from, in its order (vendored).
MARKDOWN_ROWS = Path(__file__).with_name("catalog_rows.txt")
ID_RE = re.compile(r"^[A-Z]+(-[A-Z]+)?-\d\d$")
URL_RE = re.compile(r"^https://www\.rfc-editor\.org/rfc/rfc\d{4}#section-[0-9A-Za-z]+(\.[0-9A-Za-z]+)*$")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _raw() -> dict[str, Any]:
    with default_catalog_path().open("rb") as handle:
        return tomllib.load(handle)


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "STUN-MSG-99",
        "group": "1.1",
        "group_title": "STUN message format and attributes",
        "rfc": 8489,
        "section": "5",
        "refs": "8489 §5",
        "level_text": "MUST",
        "level": "MUST",
        "side": "any",
        "summary": "A test row",
        "observation": "None",
        "src": "R",
    }
    row.update(changes)
    return row


def _data(*rows: dict[str, Any]) -> dict[str, Any]:
    return {
        "rfc": {"8489": {"title": "STUN", "url": "https://www.rfc-editor.org/rfc/rfc8489"}},
        "requirement": list(rows),
    }


def test_catalog_loads_default_path(catalog: Catalog) -> None:
    assert len(catalog) > 0
    assert all(isinstance(req, Requirement) for req in catalog.values())
    assert catalog.path == default_catalog_path()


def test_catalog_load_is_cached() -> None:
    assert load_catalog() is load_catalog()
    assert load_catalog(default_catalog_path()) is load_catalog()


def test_catalog_rows_match_markdown(catalog: Catalog) -> None:
    lines = MARKDOWN_ROWS.read_text(encoding="utf-8").splitlines()
    ids = [line for line in lines if line and not line.startswith("#")]
    assert len(ids) == 150 and len(set(ids)) == len(ids)
    # Rows added after the Markdown catalog (e.g. ICE-GATH, issue 19) follow it; its rows keep their order.
    assert set(ids) <= set(catalog)
    assert ids == [i for i in catalog if i in set(ids)]


def test_catalog_ids_well_formed(catalog: Catalog) -> None:
    for req_id, req in catalog.items():
        assert ID_RE.match(req_id), req_id
        assert req.id == req_id


def test_catalog_levels_allowed(catalog: Catalog) -> None:
    for req in catalog.values():
        assert req.level in LEVELS, req.id
        assert req.severity == SEVERITY[req.level]
        for clause in req.clauses:
            assert clause.level in LEVELS, (req.id, clause.name)


def test_catalog_mixed_level_rows_have_clauses(catalog: Catalog) -> None:
    mixed = [req for req in catalog.values() if " / " in req.level_text]
    assert mixed
    for req in mixed:
        assert len(req.clauses) >= 2, req.id
        assert len({c.name for c in req.clauses}) == len(req.clauses), req.id


def test_catalog_summaries_one_line(catalog: Catalog) -> None:
    for req in catalog.values():
        assert "\n" not in req.summary and 0 < len(req.summary) < 120, req.id


def test_catalog_parenthetical_rows_explain_level(catalog: Catalog) -> None:
    for req in catalog.values():
        if req.level_text.startswith("("):
            assert req.level_note, req.id


def test_catalog_truncated_rows_are_verified(catalog: Catalog) -> None:
    for req in catalog.values():
        if re.search(r"\bT\b", req.src):
            assert req.verified, req.id


def test_catalog_level_of_row_and_clause(catalog: Catalog) -> None:
    assert catalog.level_of("ICE-PRIO-01") == "MUST"
    assert catalog.level_of("ICE-PRIO-01", "range") == "MUST"
    assert catalog.level_of("ICE-PRIO-01", "formula") == "SHOULD"
    assert catalog.level_of("SEC-07") == "INFO"


def test_catalog_level_of_unknown_id_raises(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match="NOPE-01"):
        catalog.level_of("NOPE-01")
    with pytest.raises(KeyError, match="NOPE-01"):
        catalog["NOPE-01"]


def test_catalog_level_of_unknown_clause_raises(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match=r"ICE-PRIO-01.*no_such_clause"):
        catalog.level_of("ICE-PRIO-01", "no_such_clause")


def test_catalog_urls_well_formed(catalog: Catalog) -> None:
    for req in catalog.values():
        if req.rfc is None:
            assert req.url is None and req.level == "INFO", req.id
            continue
        assert req.url is not None and URL_RE.match(req.url), (req.id, req.url)
        assert req.rfc_name == f"RFC {req.rfc}"
        assert req.rfc in catalog.rfcs


def test_catalog_rfc_table(catalog: Catalog) -> None:
    for number in (4787, 5389, 5769, 7675, 7983, 8265, 8445, 8489, 8656, 8838, 8839):
        info = catalog.rfcs[number]
        assert info.url == f"https://www.rfc-editor.org/rfc/rfc{number}"
        assert info.title


def test_catalog_groups_in_order(catalog: Catalog) -> None:
    groups = catalog.groups()
    assert groups[0] == ("1.1", "STUN message format and attributes")
    numbers = [int(g.split(".")[1]) for g, _ in groups]
    assert numbers == sorted(numbers) == list(range(1, len(numbers) + 1))
    assert sum(len(catalog.in_group(g)) for g, _ in groups) == len(catalog)


def test_catalog_severity_mapping() -> None:
    assert SEVERITY == {"MUST": "critical", "SHOULD": "normal", "MAY": "minor", "INFO": "trivial"}


def test_parse_catalog_accepts_minimal_row() -> None:
    parsed = parse_catalog(_data(_row()))
    assert parsed["STUN-MSG-99"].url == "https://www.rfc-editor.org/rfc/rfc8489#section-5"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ((_row(), _row()), "STUN-MSG-99: duplicate requirement ID"),
        ((_row(level="MUSTN'T"),), "STUN-MSG-99: level"),
        ((_row(id="stun-msg-1"),), "bad id"),
        ((_row(level_text="MUST / SHOULD"),), "STUN-MSG-99: .* no clauses"),
        (
            (
                _row(
                    clauses=[
                        {"name": "a", "level": "MUST", "text": "x"},
                        {"name": "a", "level": "SHOULD", "text": "y"},
                    ]
                ),
            ),
            "STUN-MSG-99: duplicate clause name 'a'",
        ),
        ((_row(clauses=[{"name": "a", "level": "SHOULD", "text": "x"}]),), "strongest clause level"),
        ((_row(rfc=9999),), "STUN-MSG-99: RFC 9999"),
        ((_row(summary="x" * 130),), "STUN-MSG-99: summary"),
        ((_row(surprise=1),), "STUN-MSG-99: unknown keys surprise"),
    ],
)
def test_parse_catalog_rejects_bad_data(rows: tuple[dict[str, Any], ...], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(_data(*rows))


def test_load_catalog_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "missing.toml")


def test_load_catalog_reports_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[requirement]\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(bad)


def test_shipped_file_round_trips() -> None:
    data = _raw()
    assert len(parse_catalog(data)) == len(data["requirement"])


#: Gathering rows whose author left the revision open because the RFC 5245 counterpart text was not seen (main,
#: "ICE-GATH-05/07: no revision"); the lead decides them. Every other row with an RFC has one.
NO_REVISION_YET = frozenset({"ICE-GATH-05", "ICE-GATH-06", "ICE-GATH-07", "ICE-GATH-11", "ICE-GATH-12"})


def test_every_row_records_its_revision_and_basis() -> None:
    """Issue 12: each row says which RFC revision introduced it and whether its level rests on a normative sentence;
    procedure rows name the sentence, and a clause's own revision is only ever a newer one than its row's."""
    catalog = load_catalog()
    newer = {5389: 8489, 5766: 8656, 5245: 8445}
    for req in catalog.values():
        assert req.basis in ("normative", "procedure"), req.id
        if req.rfc is not None and req.id not in NO_REVISION_YET:
            assert req.revision is not None, f"{req.id} has no revision"
        if req.basis == "procedure":
            assert req.basis_note, f"{req.id}: a procedure row names the sentence it rests on"
        for clause in req.clauses:
            if clause.revision is not None:
                assert clause.revision == newer.get(req.revision or 0), (req.id, clause.name)

"""The requirement catalog (``suites/catalog.toml``) as typed, validated data.

Every conformance case names requirement IDs from this catalog; the gate level (MUST, SHOULD, MAY or
INFO) comes from here, never from the case's code. A row whose RFC text mixes levels carries named
clauses, so a failing check can say which part of the row it violated and be graded at that level.
"""

from __future__ import annotations

import functools
import logging
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "LEVELS",
    "SEVERITY",
    "Catalog",
    "CatalogError",
    "Clause",
    "Requirement",
    "RfcInfo",
    "default_catalog_path",
    "load_catalog",
    "parse_catalog",
    "rfc_url",
]

logger = logging.getLogger(__name__)

LEVELS: tuple[str, ...] = ("MUST", "SHOULD", "MAY", "INFO")
"""Normalised gate levels, strongest first."""

SEVERITY: Mapping[str, str] = {
    "MUST": "critical",
    "SHOULD": "normal",
    "MAY": "minor",
    "INFO": "trivial",
}
"""Allure severity for each gate level."""

_RANK = {level: len(LEVELS) - index for index, level in enumerate(LEVELS)}
_ID_RE = re.compile(r"^[A-Z]+(-[A-Z]+)?-\d\d$")
_CLAUSE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SECTION_RE = re.compile(r"^[0-9A-Za-z]+(\.[0-9A-Za-z]+)*$")
_GROUP_RE = re.compile(r"^\d+\.\d+$")
_SRC_RE = re.compile(r"^[RTD]")
_REVISIONS = frozenset({3489, 5245, 5389, 5766, 6062, 6156, 7675, 7983, 8445, 8489, 8656, 8838, 8839})
_BASES = ("normative", "procedure")
_RFC_BASE = "https://www.rfc-editor.org/rfc/rfc{number}"
_SUMMARY_MAX = 120


def rfc_url(number: int, section: str | None = None) -> str:
    """Link to an RFC, or to one of its sections, on rfc-editor.org."""
    base = _RFC_BASE.format(number=number)
    return f"{base}#section-{section}" if section else base


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the offending row."""


@dataclass(frozen=True)
class Clause:
    """One separately graded part of a requirement row (for rows whose RFC text mixes levels)."""

    name: str
    level: str
    text: str
    #: The revision that introduced this clause when it is newer than the row's (e.g. 8489 in a 5389 row).
    revision: int | None = None


@dataclass(frozen=True)
class RfcInfo:
    """Title and base URL of an RFC the catalog cites."""

    number: int
    title: str
    url: str


@dataclass(frozen=True)
class Requirement:
    """One catalog row: a black-box checkable requirement and its gate level."""

    id: str
    group: str
    group_title: str
    rfc: int | None
    section: str | None
    refs: str
    level_text: str
    level: str
    side: str
    summary: str
    observation: str
    src: str
    clauses: tuple[Clause, ...] = ()
    level_note: str | None = None
    verified: str | None = None
    revision: int | None = None
    basis: str | None = None
    basis_note: str | None = None

    @property
    def url(self) -> str | None:
        """Link to the primary RFC section, or None for a harness metric with no RFC."""
        if self.rfc is None:
            return None
        return rfc_url(self.rfc, self.section)

    @property
    def rfc_name(self) -> str:
        """The primary RFC as "RFC 8489", or "harness" for a row that cites no RFC."""
        return f"RFC {self.rfc}" if self.rfc is not None else "harness"

    @property
    def severity(self) -> str:
        """Allure severity for the row's level."""
        return SEVERITY[self.level]

    def clause(self, name: str) -> Clause:
        """The named clause; KeyError naming the row and the clause if it does not exist."""
        for clause in self.clauses:
            if clause.name == name:
                return clause
        known = ", ".join(c.name for c in self.clauses) or "none"
        raise KeyError(f"{self.id} has no clause {name!r} (clauses: {known})")

    def level_of(self, clause: str | None = None) -> str:
        """Gate level of the row, or of one of its clauses."""
        return self.level if clause is None else self.clause(clause).level

    def revision_of(self, clause: str | None = None) -> int | None:
        """The revision that introduced the row, or the clause when the clause names a newer one."""
        if clause is not None:
            own = self.clause(clause).revision
            if own is not None:
                return own
        return self.revision


@dataclass(frozen=True, eq=False)
class Catalog(Mapping[str, Requirement]):
    """All requirements by ID, in file order, plus the table of cited RFCs."""

    requirements: Mapping[str, Requirement]
    rfcs: Mapping[int, RfcInfo] = field(default_factory=dict)
    path: Path | None = None

    def __getitem__(self, req_id: str) -> Requirement:
        try:
            return self.requirements[req_id]
        except KeyError:
            raise KeyError(f"unknown requirement ID {req_id!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.requirements)

    def __len__(self) -> int:
        return len(self.requirements)

    def groups(self) -> list[tuple[str, str]]:
        """(group, group_title) pairs in catalog order, e.g. ("1.1", "STUN message format ...")."""
        seen: dict[str, str] = {}
        for req in self.requirements.values():
            seen.setdefault(req.group, req.group_title)
        return list(seen.items())

    def in_group(self, group: str) -> list[Requirement]:
        """The rows of one group, in catalog order."""
        return [req for req in self.requirements.values() if req.group == group]

    def level_of(self, req_id: str, clause: str | None = None) -> str:
        """Gate level of a row or of one of its clauses; KeyError names an unknown ID or clause."""
        return self[req_id].level_of(clause)


def default_catalog_path() -> Path:
    """The shipped catalog: ``suites/catalog.toml`` beside the package, else a package-data copy."""
    here = Path(__file__).resolve()
    candidates = (here.parents[1] / "suites" / "catalog.toml", here.parent / "data" / "catalog.toml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise CatalogError(f"no requirement catalog found (looked in {looked})")


def _text(row: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = row.get(key)
    if value is None:
        if optional:
            return None
        raise CatalogError(f"{where}: missing {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: {key!r} must be a non-empty string")
    return value


def _req_text(row: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(row, key, where)
    assert value is not None
    return value


def _level(value: str, where: str) -> str:
    if value not in LEVELS:
        raise CatalogError(f"{where}: level {value!r} is not one of {', '.join(LEVELS)}")
    return value


def _parse_clauses(raw: Any, where: str) -> tuple[Clause, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise CatalogError(f"{where}: 'clauses' must be a list of tables")
    clauses: list[Clause] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        at = f"{where} clause #{index + 1}"
        if not isinstance(item, dict):
            raise CatalogError(f"{at}: must be a table with name, level, text")
        name = _req_text(item, "name", at)
        if not _CLAUSE_RE.match(name):
            raise CatalogError(f"{at}: clause name {name!r} is not snake_case")
        if name in names:
            raise CatalogError(f"{where}: duplicate clause name {name!r}")
        names.add(name)
        unknown = sorted(set(item) - {"name", "level", "text", "revision"})
        if unknown:
            raise CatalogError(f"{at}: unknown keys {', '.join(unknown)}")
        revision = item.get("revision")
        if revision is not None and revision not in _REVISIONS:
            raise CatalogError(f"{at}: revision {revision!r} is not one of {sorted(_REVISIONS)}")
        level = _level(_req_text(item, "level", at), at)
        clauses.append(Clause(name, level, _req_text(item, "text", at), revision))
    return tuple(clauses)


def _parse_rfcs(raw: Any) -> dict[int, RfcInfo]:
    if not isinstance(raw, dict):
        raise CatalogError("[rfc] table is missing")
    rfcs: dict[int, RfcInfo] = {}
    for key, entry in raw.items():
        where = f"[rfc] {key}"
        if not str(key).isdigit():
            raise CatalogError(f"{where}: key must be an RFC number")
        if not isinstance(entry, dict):
            raise CatalogError(f"{where}: must be a table with title and url")
        number = int(key)
        url = _req_text(entry, "url", where)
        if url != rfc_url(number):
            raise CatalogError(f"{where}: url {url!r} should be {rfc_url(number)!r}")
        rfcs[number] = RfcInfo(number, _req_text(entry, "title", where), url)
    return rfcs


def _parse_requirement(row: Any, index: int, rfcs: Mapping[int, RfcInfo]) -> Requirement:
    if not isinstance(row, dict):
        raise CatalogError(f"requirement #{index + 1}: must be a table")
    req_id = row.get("id")
    if not isinstance(req_id, str) or not _ID_RE.match(req_id):
        raise CatalogError(f"requirement #{index + 1}: bad id {req_id!r}")
    where = req_id

    group = _req_text(row, "group", where)
    if not _GROUP_RE.match(group):
        raise CatalogError(f"{where}: group {group!r} is not of the form '1.4'")
    rfc = row.get("rfc")
    section = _text(row, "section", where, optional=True)
    if rfc is not None:
        if not isinstance(rfc, int) or isinstance(rfc, bool):
            raise CatalogError(f"{where}: rfc must be an integer")
        if rfc not in rfcs:
            raise CatalogError(f"{where}: RFC {rfc} is not listed in the [rfc] table")
        if section is None or not _SECTION_RE.match(section):
            raise CatalogError(f"{where}: section {section!r} is not a section number like '14.7'")
    elif section is not None:
        raise CatalogError(f"{where}: section given without rfc")

    level = _level(_req_text(row, "level", where), where)
    if rfc is None and level != "INFO":
        raise CatalogError(f"{where}: only an INFO row may cite no RFC")
    summary = _req_text(row, "summary", where)
    if "\n" in summary or len(summary) >= _SUMMARY_MAX:
        raise CatalogError(f"{where}: summary must be one line under {_SUMMARY_MAX} characters")
    src = _req_text(row, "src", where)
    if not _SRC_RE.match(src):
        raise CatalogError(f"{where}: src {src!r} must start with R, T or D")

    level_text = _req_text(row, "level_text", where)
    clauses = _parse_clauses(row.get("clauses"), where)
    if " / " in level_text and not clauses:
        raise CatalogError(f"{where}: level {level_text!r} mixes levels but the row has no clauses")
    if clauses:
        strongest = max((c.level for c in clauses), key=_RANK.__getitem__)
        if strongest != level:
            raise CatalogError(f"{where}: level {level} differs from its strongest clause level {strongest}")

    revision = row.get("revision")
    if revision is not None and revision not in _REVISIONS:
        raise CatalogError(f"{where}: revision {revision!r} is not one of {sorted(_REVISIONS)}")
    basis = _text(row, "basis", where, optional=True)
    if basis is not None and basis not in _BASES:
        raise CatalogError(f"{where}: basis {basis!r} is not one of {', '.join(_BASES)}")

    unknown = sorted(set(row) - {f.name for f in fields(Requirement)})
    if unknown:
        raise CatalogError(f"{where}: unknown keys {', '.join(unknown)}")

    return Requirement(
        id=req_id,
        group=group,
        group_title=_req_text(row, "group_title", where),
        rfc=rfc,
        section=section,
        refs=_req_text(row, "refs", where),
        level_text=level_text,
        level=level,
        side=_req_text(row, "side", where),
        summary=summary,
        observation=_req_text(row, "observation", where),
        src=src,
        clauses=clauses,
        level_note=_text(row, "level_note", where, optional=True),
        verified=_text(row, "verified", where, optional=True),
        revision=revision,
        basis=basis,
        basis_note=_text(row, "basis_note", where, optional=True),
    )


def parse_catalog(data: Mapping[str, Any], path: Path | None = None) -> Catalog:
    """Validate decoded TOML and build the catalog; CatalogError names the bad row."""
    rfcs = _parse_rfcs(data.get("rfc"))
    rows = data.get("requirement")
    if not isinstance(rows, list) or not rows:
        raise CatalogError("no [[requirement]] tables")
    requirements: dict[str, Requirement] = {}
    for index, row in enumerate(rows):
        req = _parse_requirement(row, index, rfcs)
        if req.id in requirements:
            raise CatalogError(f"{req.id}: duplicate requirement ID")
        requirements[req.id] = req
    return Catalog(requirements=requirements, rfcs=rfcs, path=path)


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> Catalog:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise CatalogError(f"catalog file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from exc
    catalog = parse_catalog(data, path)
    logger.debug("loaded %d requirements from %s", len(catalog), path)
    return catalog


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog (default: the repository's ``suites/catalog.toml``); cached per path."""
    resolved = Path(path).resolve() if path is not None else default_catalog_path()
    return _load(resolved)

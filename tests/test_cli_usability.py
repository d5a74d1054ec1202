"""The CLI and the CI gate as a new user and a CI job meet them (issue 18): install, output folders, selection,
JUnit, baselines, identity, per-case evidence and the adapter contract's rules enforced by the harness."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conformance import cli, install
from conformance.adapters import node

ROOT = Path(__file__).resolve().parents[1]
SHIMS = ROOT / "tests" / "shims"


# -- item 0: install ------------------------------------------------------------------------------------------------


def _fake_bin(tmp_path: Path, name: str, script: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    exe = folder / name
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder


def test_install_fills_an_empty_node_cache_outside_any_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A fake npm (no registry needed) records its call and lays out node_modules as `npm ci` does.
    log = tmp_path / "npm.log"
    fake = _fake_bin(
        tmp_path,
        "npm",
        f'echo "$@" >> {log}\nmkdir -p node_modules/werift-ice\necho \'{{"version": "0.2.3"}}\' '
        "> node_modules/werift-ice/package.json\n",
    )
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    node.installed_version.cache_clear()
    if not node.node_available():
        pytest.skip("node is not on PATH")
    assert not cache.exists()
    code = cli.main(["install", "werift"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ci" in log.read_text()
    assert out.strip().splitlines()[-1].startswith("werift: ready")
    assert node.installed_version("werift") == "0.2.3"
    # A second install finds the cache and does not call npm again.
    assert cli.main(["install", "werift"]) == 0
    assert log.read_text().count("ci") == 1


def test_install_names_missing_debian_packages_and_namespace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(install, "debian_missing", lambda pkgs: [p for p in pkgs if p != "gcc"])
    monkeypatch.setattr(node, "netns_available", lambda: False)
    monkeypatch.setattr(install, "_installer", lambda name: None)
    code = cli.main(["install", "libnice", "libjuice", "aioice"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    assert "apt-get install -y libjson-glib-dev libnice-dev pkg-config" in "\n".join(lines)
    assert lines[-3].startswith("libnice: NOT READY: Debian packages libnice-dev libjson-glib-dev pkg-config")
    assert lines[-2].startswith("libjuice: NOT READY:") and "unshare -n" in lines[-2]
    assert lines[-1] == "aioice: ready"


def test_install_unknown_iut_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install", "nosuchstack"]) == 2
    assert "unknown IUT 'nosuchstack'" in capsys.readouterr().err

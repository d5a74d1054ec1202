"""IUTs as data: every ``iut.toml`` loads, the Node shims read the same capabilities, and a vendor package registers
an IUT through the ``ice_conformance.iuts`` entry point that ``ice-conformance list`` shows and ``run --iut`` runs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conformance.adapters import registry
from conformance.adapters.base import IceAgentAdapter, TurnServerAdapter
from conformance.adapters.registry import IUT_FILE, IutFileError, get_iut, known_iuts, load_iut_file

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ROOT / "conformance" / "adapters"
BUILTIN = sorted(ADAPTERS.glob(f"*/{IUT_FILE}"))
VENDOR = "vendor-example"


def test_every_adapter_folder_with_a_shim_has_an_iut_toml() -> None:
    for folder in ADAPTERS.iterdir():
        if folder.is_dir() and any((folder / f).exists() for f in ("shim.js", "shim.c", "adapter.py")):
            assert (folder / IUT_FILE).is_file(), folder


@pytest.mark.parametrize("path", BUILTIN, ids=lambda p: p.parent.name)
def test_iut_toml_loads_and_is_registered(path: Path) -> None:
    spec = load_iut_file(path)
    assert spec.kind in ("ice-agent", "turn-server") and spec.description and spec.install_hint
    assert get_iut(spec.name).folder == path.parent
    if spec.kind == "turn-server" and spec.capabilities is not None:
        assert "turn_server" in spec.capabilities
    if spec.kind == "ice-agent" and spec.capabilities is not None:
        assert {"controlling", "controlled"} & spec.capabilities


@pytest.mark.parametrize("name", [n for n in known_iuts() if get_iut(n).node is not None])
def test_node_shim_reads_the_capabilities_the_registry_reads(name: str) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    folder = get_iut(name).folder
    script = f"console.log(JSON.stringify(require({json.dumps(str(ADAPTERS / '_node' / 'common.js'))})"
    script += f".declaredCapabilities({json.dumps(str(folder))})))"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=60)
    assert frozenset(json.loads(out.stdout)) == get_iut(name).capabilities


def test_adapters_implement_only_their_kind() -> None:
    """coturn is a TURN server with no ICE-agent stubs; aioice is an ICE agent with no server stubs."""
    from conformance.adapters.aioice import AioiceAdapter
    from conformance.adapters.coturn import CoturnAdapter
    from conformance.reference import ReferenceAdapter

    assert isinstance(CoturnAdapter(), TurnServerAdapter) and not isinstance(CoturnAdapter(), IceAgentAdapter)
    for cls in (AioiceAdapter, ReferenceAdapter):
        assert isinstance(cls(), IceAgentAdapter) and not hasattr(cls, "start_server")


def test_a_bad_iut_toml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / IUT_FILE
    bad.write_text('name = "x"\nkind = "printer"\n[launcher]\ntype = "stdio"\nargv = ["true"]\n')
    with pytest.raises(IutFileError, match="kind"):
        load_iut_file(bad)
    bad.write_text(
        'name = "x"\nkind = "ice-agent"\n[launcher]\ntype = "stdio"\nargv = ["true"]\n[capabilities]\n'
        'declared = ["teleport"]\n'
    )
    with pytest.raises(IutFileError, match="teleport"):
        load_iut_file(bad)


# -- a vendor package, installed with pip into a private folder ---------------------------------------------------

_VENDOR_MAIN = '''"""A vendor's ICE agent (here the harness's reference peer), served over the stdio contract."""
from conformance.adapters.server import main_for
from conformance.reference import ReferenceAdapter

main_for(ReferenceAdapter)
'''

_VENDOR_TOML = f'''name = "{VENDOR}"
kind = "ice-agent"
description = "a vendor's ICE agent registered through the ice_conformance.iuts entry point"
install_hint = "pip install vendor-ice-iut"

[launcher]
type = "stdio"
argv = ["{{python}}", "-m", "vendor_ice_iut"]

[capabilities]
declared = ["controlling", "controlled", "set_credentials", "trickle", "consent", "stun_client"]
'''


def _wheel(folder: Path) -> Path:
    """A minimal wheel (PEP 427) holding the package, its iut.toml and the entry point."""
    dist = "vendor_ice_iut-1.0.dist-info"
    files = {
        "vendor_ice_iut/__init__.py": '"""A vendor IUT package."""\n',
        "vendor_ice_iut/__main__.py": _VENDOR_MAIN,
        "vendor_ice_iut/iut.toml": _VENDOR_TOML,
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: vendor-ice-iut\nVersion: 1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": f"[{registry.ENTRY_POINT_GROUP}]\n{VENDOR} = vendor_ice_iut\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    path = folder / "vendor_ice_iut-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def vendor_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process that sees the vendor package, pip-installed into a private folder."""
    base = tmp_path_factory.mktemp("vendor")
    target = base / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            _wheel(base),
        ],
        check=True,
        timeout=300,
    )
    path = os.pathsep.join(p for p in (str(target), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_vendor_iut_is_listed(vendor_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "list"], env=vendor_env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(line for line in out.stdout.splitlines() if line.strip().startswith(VENDOR))
    assert "entry point" in line
    assert VENDOR not in known_iuts()  # this process does not see the private folder


def test_vendor_iut_runs(vendor_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "ice/test_candidates.py::test_candidates_follow_the_grammar",
            "--iut",
            VENDOR,
            "--out",
            str(out),
        ],
        env=vendor_env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    records = json.loads((out / "summary.json").read_text())["records"]
    assert [(r["iut"], r["verdict"]) for r in records] == [(VENDOR, "PASS")]

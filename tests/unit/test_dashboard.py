"""Serving the dashboard: open at /ui with strict headers, shipped whole in the package, no broken imports."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.dashboard import UI_DIR
from api.main import create_app
from models.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
IMPORT = re.compile(r"""(?:import|from)\s*(?:[\w{}\s,*]+from\s*)?["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app on the embedded defaults (SQLite in a temp folder), lifespan running."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_the_page_needs_no_key_and_forbids_inline_scripts(client: TestClient) -> None:
    redirect = client.get("/ui", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>tuneforge</title>" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    script = client.get("/ui/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["content-security-policy"] == csp


def test_the_ui_opens_nothing_else(client: TestClient) -> None:
    """Only files under api/ui are served, and the API itself still asks for a key."""
    assert client.get("/ui/js/nope.js").status_code == 404
    assert client.get("/ui/%2e%2e/dashboard.py").status_code == 404
    assert client.get("/ui/..%2fdashboard.py").status_code == 404
    assert client.get("/v1/jobs").status_code == 401
    assert not any(path.startswith("/ui") for path in client.get("/openapi.json").json()["paths"])


def test_every_asset_ships_in_the_package() -> None:
    """A non-editable install has every file under api/ui (the package-data globs cover them)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api"]
    shipped = {p for pattern in patterns for p in (ROOT / "api").glob(pattern) if p.is_file()}
    assets = {p for p in UI_DIR.rglob("*") if p.is_file()}
    assert assets and assets <= shipped, sorted(str(p) for p in assets - shipped)


def test_the_page_loads_only_files_that_exist() -> None:
    """index.html's script and styles and every relative JS import resolve to a file; no inline script."""
    html = (UI_DIR / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    targets = [UI_DIR / ref for ref in re.findall(r'(?:src|href)="([^"#:]+)"', html)]
    for module in UI_DIR.rglob("*.js"):
        targets += [(module.parent / ref).resolve() for ref in IMPORT.findall(module.read_text())]
    assert len(targets) > 15
    assert [str(t) for t in targets if not t.is_file()] == []

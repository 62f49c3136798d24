"""Fixtures for browser tests: Debian's chromium driven by Playwright, screenshots kept."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.integration.conftest import settings  # noqa: F401  (the session's Settings fixture)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system chromium (never Playwright's download); CI=true fails when it is missing."""
    path = shutil.which(os.environ.get("TUNEFORGE_CHROMIUM", "chromium"))
    if path is None:
        missing("chromium is not installed (apt-get install chromium); .ci/run installs it")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    return str(path)


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    """A headless chromium for one test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


class Screenshots:
    """Saves full-page screenshots under pytest's tmp path and, if set, $TUNEFORGE_SCREENSHOTS."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        extra = os.environ.get("TUNEFORGE_SCREENSHOTS")
        self.extra = Path(extra) if extra else None
        self.taken: list[Path] = []

    def take(self, page: Any, name: str) -> Path:
        """Screenshot ``page`` as ``name``.png; returns where it went."""
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if self.extra is not None:
            self.extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.extra / path.name)
        self.taken.append(path)
        return path


@pytest.fixture
def screenshots(tmp_path: Path) -> Screenshots:
    """Where the test's screenshots go."""
    return Screenshots(tmp_path / "screenshots")

"""The dashboard in a real browser, real server and worker: follow a live search, cancel it, predict."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.embedded import create_key
from models.settings import Settings
from tests.browser.conftest import Screenshots
from tests.faults.services import live_api
from tests.support import submit, upload

pytestmark = pytest.mark.integration

# One trial per task on the reference engine: each trial reports every epoch and completes on its
# own, so the leaderboard fills while later trials still train.
SEARCH = {
    "search": {
        "max_trials": 8,
        "max_concurrent_trials": 1,
        "population_size": 1,
        "num_layers": {"int": [1, 2]},
        "layer": {"units": {"int": [8, 32], "step": 8}},
    },
    "training": {
        "engine": "reference",
        "epochs": 25,
        "early_stopping": None,
        "learning_rate": {"float": [3e-4, 3e-2], "log": True},
    },
}
WAIT_MS = 60_000


@pytest.fixture
def api(server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A real ``tuneforge serve`` whose streams poll often (curves move several times a second)."""
    with live_api(server_env | {"TUNEFORGE_STREAM_POLL_S": "0.2"}, tmp_path / "api.log") as base:
        yield base


def _page_state(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => ({
              trial: document.querySelector('#trial-panel h2')?.textContent,
              points: Number(document.querySelector('#curve-loss svg')?.dataset.points || 0),
              status: document.querySelector('#job-status [data-status]')?.dataset.status,
            })"""
        )
    )


def _see_curve_grow(page: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two readings of the same running trial's loss curve, the second with more points."""
    deadline = time.monotonic() + WAIT_MS / 1000
    first: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        now = _page_state(page)
        if now["status"] == "running" and now["points"] > 0:
            if first is None or now["trial"] != first["trial"]:
                first = now
            elif now["points"] > first["points"]:
                return first, now
        time.sleep(0.1)
    raise AssertionError(f"the loss curve did not grow while the search ran (last: {_page_state(page)})")


def _in_browser_checks(page: Any) -> None:
    """The importance estimate and the stream parser, run as the page's own modules."""
    shares = page.evaluate(
        """async () => {
          const { importance } = await import('/ui/js/importance.js');
          const trials = Array.from({ length: 12 }, (_, i) => ({
            // The optimizer decides the score; units is noise.
            hyperparameters: { optimizer: i % 2 ? 'adam' : 'sgd', units: [8, 16, 24][i % 3] },
            score: (i % 2 ? 0.9 : 0.6) + 0.01 * Math.sin(i),
          }));
          return Object.fromEntries(importance(trials).map((r) => [r.name, r.share]));
        }"""
    )
    assert shares["optimizer"] > 0.9 and shares["units"] < 0.1, shares
    events = page.evaluate(
        """async () => {
          const { EventStreamParser } = await import('/ui/js/sse.js');
          const seen = [];
          const parser = new EventStreamParser((e) => seen.push(e));
          // Chunks split inside a line and inside a CRLF, a comment, and a multi-line data field.
          for (const chunk of [': hello\\r\\nevent: ep', 'och\\r', '\\ndata: {"epoch"',
                               ': 3}\\r\\nid: e1.t0.m3\\r\\n\\r', '\\ndata: a\\ndata: b\\n\\n']) {
            parser.push(chunk);
          }
          return { seen, lastId: parser.lastId };
        }"""
    )
    assert events["seen"] == [
        {"event": "epoch", "id": "e1.t0.m3", "data": {"epoch": 3}},
        {"event": "message", "id": "e1.t0.m3", "data": "a\nb"},
    ], events


def test_sign_in_follow_a_live_search_cancel_it_and_predict(
    api: str,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    settings: Settings,
    csvs: dict[str, Path],
    browser: Any,
    screenshots: Screenshots,
) -> None:
    """A user signs in, watches a running search's curve grow and its leaderboard fill, cancels it,
    then opens a finished model's card and predicts a row; errors from the API are shown, not lost."""
    key = create_key(settings, f"tenant-{secrets.token_hex(4)}")
    client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    dataset = upload(client, csvs["breast_cancer"])
    train = submit(client, dataset["id"], "target", {"training": {"epochs": 5}})
    search = submit(client, dataset["id"], "target", SEARCH, kind="search", name="live")

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.set_default_timeout(WAIT_MS)
    crashes: list[str] = []
    page.on("pageerror", lambda error: crashes.append(str(error)))

    # A wrong key: the API's 401 is shown and the page stays on sign-in.
    page.goto(f"{api}/ui")
    page.fill("#api-key", "tfg_not-a-real-key")
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#errors .error:has-text('401')")
    page.fill("#api-key", key)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector(f"#jobs-body tr[data-job='{search['id']}']")
    page.wait_for_selector(f"#jobs-body tr[data-job='{train['id']}']")
    page.select_option("#filter-kind", "search")
    page.wait_for_selector(f"#jobs-body tr[data-job='{train['id']}']", state="detached")
    screenshots.take(page, "01-jobs")

    page.click(f"a[href='#/jobs/{search['id']}']")
    first, later = _see_curve_grow(page)
    assert later["points"] > first["points"] and later["trial"] == first["trial"]
    screenshots.take(page, "02-search-live")
    # The leaderboard fills: a trial completes with a score while the search still runs.
    page.wait_for_selector("#leaderboard tbody tr:has([data-status='completed'])")
    assert _page_state(page)["status"] == "running"
    # The next trial's row appears once the coordinator has proposed it (a moment after the first ends).
    # A selector, not wait_for_function: its polling evaluates a string, which the page's CSP forbids.
    page.wait_for_selector("#leaderboard tbody tr:nth-child(2)")
    page.click("#leaderboard th[data-sort='number']")  # sortable: newest trial first
    rows = page.locator("#leaderboard tbody tr")
    numbers = [int(n) for n in rows.evaluate_all("rows => rows.map(r => r.dataset.trial)")]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) >= 2
    page.wait_for_selector("#grad-norms svg[data-points]:not([data-points='0'])")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-job")
    page.wait_for_selector("#job-status [data-status='cancelling'], #job-status [data-status='cancelled']")
    page.wait_for_selector("#job-status [data-status='cancelled']")
    page.wait_for_selector("#timeline li:has([data-status='cancelled'])")
    assert client.get(f"/v1/jobs/{search['id']}").json()["status"] == "cancelled"
    screenshots.take(page, "03-search-cancelled")

    # The finished train job's model: its card, then a prediction from the form.
    page.goto(f"{api}/ui/#/jobs/{train['id']}")
    page.click("#best-model")
    page.wait_for_selector("#model-inputs tbody tr")
    assert page.locator("#model-inputs tbody tr").count() == len(dataset["columns"]) - 1
    assert page.text_content("#model-classes") == "Classes: 0, 1"
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predictions .label")
    assert page.text_content("#predictions .label") in {"0", "1"}
    # A value the API refuses: its problem+json is shown beside the form.
    page.click("#predict details summary")
    page.fill("#predict-json", '[{"no such column": 1}]')
    page.click("#predict details button[type=submit]")
    page.wait_for_selector("#predict .error:has-text('unknown_column')")
    screenshots.take(page, "04-model")

    # A phone: nothing wider than the screen but the tables and plots that scroll inside their cards.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{api}/ui/#/jobs/{search['id']}")
    page.wait_for_selector("#leaderboard tbody tr")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshots.take(page, "05-phone")

    _in_browser_checks(page)
    assert crashes == []
    assert all(path.stat().st_size > 10_000 for path in screenshots.taken)

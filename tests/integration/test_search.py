"""Searches as a distributed workload: two real workers, failures, cancellation."""

from __future__ import annotations

import csv
import io
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.settings import Settings
from tests.conftest import start_worker, stop_process
from tests.support import GUIDE_SEARCH, upload, wait_job

pytestmark = pytest.mark.integration

DIVERGES = 5.0  # SGD with this learning rate on unscaled regression input turns the loss into NaN


@pytest.fixture(scope="module")
def second_worker(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A second real worker process on the same queue."""
    process = start_worker(server_env, "worker-2", tmp_path_factory.mktemp("logs") / "worker-2.log")
    yield process
    stop_process(process)


def _search(client: TestClient, dataset_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/v1/jobs", json={"kind": "search", "dataset_id": dataset_id, "target": "target", "spec": spec}
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_the_guides_full_search_runs_on_two_workers(
    client: TestClient,
    worker: subprocess.Popen[bytes],
    second_worker: subprocess.Popen[bytes],
    csvs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Every trial recorded once, trials on both workers, the best model downloadable and predicting."""
    dataset = upload(client, csvs["breast_cancer"])
    job = wait_job(client, _search(client, dataset["id"], GUIDE_SEARCH)["id"], timeout=600)
    assert job["status"] == "succeeded", job.get("error")
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert sorted(t["number"] for t in trials) == list(range(10))
    assert all(t["status"] == "completed" for t in trials)
    assert {t["worker"].split()[0] for t in trials} == {"worker-1", "worker-2"}
    assert all(
        {"num_layers", "units0", "activation0", "dropout0", "optimizer"} <= set(t["hyperparameters"])
        for t in trials
    )
    assert job["progress"]["trials_done"] == 10
    # Two populations of five (max_concurrent_trials 2), one per worker, each trained as one program;
    # every trial still has its own per-epoch series, diagnostics and engine.
    notes = [e["reason"] for e in client.get(f"/v1/jobs/{job['id']}/events").json() if e["from"] == e["to"]]
    assert sum("together as one population of 5 on the fast engine" in n for n in notes) == 2, notes
    for trial in trials:
        series = client.get(f"/v1/jobs/{job['id']}/metrics", params={"trial": trial["number"]}).json()
        assert [row["epoch"] for row in series] == list(range(1, trial["metrics"]["epochs_run"] + 1))
        assert len(series[0]["grad_norms"]) == trial["hyperparameters"]["num_layers"] + 1
        assert trial["metrics"]["engine"] == "fast" and "flags" in trial["diagnostics"]
    assert len({t["score"] for t in trials}) > 1
    best = max(trials, key=lambda t: t["score"])
    assert job["best"]["trial_id"] == best["id"] and job["best"]["score"] == best["score"]
    assert job["best"]["score"] >= 0.9
    series = client.get(f"/v1/jobs/{job['id']}/metrics", params={"trial": best["number"]}).json()
    assert series and all(row["trial"] == best["number"] for row in series)

    card = client.get(f"/v1/models/{job['best']['model_id']}").json()
    assert card["trial_id"] == best["id"]
    path = tmp_path / "best.keras"
    path.write_bytes(client.get(f"/v1/models/{card['id']}/download").content)
    model = keras.saving.load_model(path, safe_mode=True)
    hidden = [layer for layer in model.layers if layer.name.startswith("dense_")]
    assert len(hidden) == best["hyperparameters"]["num_layers"]
    assert hidden[0].units == best["hyperparameters"]["units0"]
    inputs = {f["input"]: np.zeros((2, 1), dtype="float32") for f in card["input_schema"]["inputs"]}
    assert model.predict(inputs, verbose=0).shape == (2, 1)


def _grid_over_learning_rates(rates: list[float], **search: Any) -> dict[str, Any]:
    return {
        "preprocessing": {"normalization": "none"},
        "training": {
            "optimizer": "sgd",
            "learning_rate": {"choice": rates},
            "epochs": 8,
            "early_stopping": None,
        },
        "search": {"algorithm": "grid", "max_trials": len(rates), "max_concurrent_trials": 1, **search},
    }


def test_one_failing_trial_does_not_stop_the_search(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """A diverging trial is recorded failed with its error; the others complete and the search succeeds."""
    dataset = upload(client, csvs["diabetes"])
    job = wait_job(
        client, _search(client, dataset["id"], _grid_over_learning_rates([DIVERGES, 1e-6, 1e-5]))["id"]
    )
    assert job["status"] == "succeeded", job.get("error")
    trials = {
        t["hyperparameters"]["learning_rate"]: t for t in client.get(f"/v1/jobs/{job['id']}/trials").json()
    }
    assert trials[DIVERGES]["status"] == "failed" and "NaN" in trials[DIVERGES]["error"]
    assert trials[1e-6]["status"] == trials[1e-5]["status"] == "completed"


def test_three_failures_in_a_row_fail_the_search(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """max_consecutive_failures (default 3) consecutive failed trials fail the search with the cause."""
    dataset = upload(client, csvs["diabetes"])
    spec = _grid_over_learning_rates([DIVERGES, DIVERGES + 1, DIVERGES + 2, 1e-5])
    job = wait_job(client, _search(client, dataset["id"], spec)["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "search_failed"
    assert "consecutive" in job["error"]["message"] and "NaN" in job["error"]["message"]
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert [t["status"] for t in trials] == ["failed"] * 3


def test_cancelling_a_search_stops_it_within_seconds(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """Cancel during a search: cancelled within 5 s, and no trial starts after the cancel."""
    dataset = upload(client, csvs["breast_cancer"])
    spec = {
        "training": {
            "epochs": 5000,
            "early_stopping": None,
            "batch_size": 8,
            "optimizer": {"choice": ["adam", "rmsprop", "sgd"]},
        },
        "search": {"max_trials": 6, "max_concurrent_trials": 2},
    }
    job = _search(client, dataset["id"], spec)
    deadline = time.monotonic() + 120
    while not any(t["status"] == "running" for t in client.get(f"/v1/jobs/{job['id']}/trials").json()):
        # A wait that runs out fails: cancelling before any trial ran would prove nothing.
        assert time.monotonic() < deadline, "no trial started running within 120 s"
        time.sleep(0.2)
    cancelled_at = time.monotonic()
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    asked = datetime.fromisoformat(client.get(f"/v1/jobs/{job['id']}/events").json()[-1]["at"])
    assert response.status_code == 202
    done = wait_job(client, job["id"], timeout=5)
    assert done["status"] == "cancelled"
    assert time.monotonic() - cancelled_at <= 5
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert all(t["status"] == "stopped" for t in trials)
    started_after = [t for t in trials if t["worker"] and datetime.fromisoformat(t["started_at"]) > asked]
    assert started_after == []


def test_a_target_score_stops_the_search_early(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """search.target_score: once a trial reaches it, no further trial starts and the search succeeds."""
    dataset = upload(client, csvs["breast_cancer"])
    spec = {
        "training": {"epochs": 20, "optimizer": {"choice": ["adam", "rmsprop", "nadam"]}},
        "search": {"max_trials": 6, "max_concurrent_trials": 1, "target_score": 0.9},
    }
    job = wait_job(client, _search(client, dataset["id"], spec)["id"])
    assert job["status"] == "succeeded", job.get("error")
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert len(trials) < 6 and trials[-1]["score"] >= 0.9
    events = client.get(f"/v1/jobs/{job['id']}/events").json()
    assert "target val_accuracy 0.9 reached" in events[-1]["reason"]


def test_a_search_without_a_space_searches_the_default_one(
    client: TestClient,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    csvs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """``{"search": {...}}`` with no distribution: a space sized to the data instead of a 422.

    Its saved model averages the trials that improve the best one's validation loss (from 4: trained
    with one learning rate for 20 epochs, all are decent and differ, so averaging helps) and takes raw
    rows like any other.
    """
    dataset = upload(client, csvs["breast_cancer"])
    spec = {
        "training": {"epochs": 20, "learning_rate": 0.01},
        "evaluation": {"test_fraction": 0.2, "ensemble": 3},
        # Drawn trials only: the default starting points (a linear model, a 64-64 network; unit-tested in
        # test_default_search and test_search_parity) are two of four here, too few to average from.
        "search": {"max_trials": 4, "max_concurrent_trials": 1, "initial_trials": []},
    }
    submitted = _search(client, dataset["id"], spec)
    stored = submitted["spec"]
    assert stored["search"]["initial_trials"] == []  # the user's own list, even empty, wins
    assert stored["search"]["num_layers"] == {"int": [0, 3]}
    assert stored["training"]["optimizer"] == {"choice": ["adam", "nadam", "rmsprop"]}
    assert stored["training"]["epochs"] == 20 and stored["training"]["learning_rate"] == 0.01  # the user's
    job = wait_job(client, submitted["id"])
    assert job["status"] == "succeeded", job.get("error")
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert len(trials) == 4 and all(t["status"] == "completed" for t in trials)
    assert all(0 <= t["hyperparameters"]["num_layers"] <= 3 for t in trials)
    optimizers = [t["hyperparameters"]["optimizer"] for t in trials]
    # One meaning of best for trains and searches; selection on validation, test scored once after.
    best = job["best"]
    assert (best["objective"], best["direction"]) == ("val_loss", "min")  # the default search's
    assert best["score"] == min(t["score"] for t in trials)
    assert best["test_rows"] == 114 and "test_accuracy" in best["test"]
    assert set(best["baselines"]) == {"linear", "boosted_trees"}
    members = best["ensemble"]["members"]  # chosen greedily on validation, the best trial first
    assert members[0] == min(trials, key=lambda t: t["score"])["number"]
    assert 2 <= len(members) <= 3 and set(members) <= {t["number"] for t in trials}
    card = client.get(f"/v1/models/{best['model_id']}").json()
    assert card["metrics"]["val_accuracy"] == best["ensemble"]["val"]["val_accuracy"]
    assert card["metrics"]["test_accuracy"] == best["test"]["test_accuracy"]
    path = tmp_path / "ensemble.keras"
    path.write_bytes(client.get(f"/v1/models/{card['id']}/download").content)
    model = keras.saving.load_model(path, safe_mode=True)
    names = [layer.name for layer in model.layers if layer.name.startswith("member_")]
    assert names == [f"member_{i}" for i in range(len(members))]
    rows = [dict.fromkeys((f["column"] for f in card["input_schema"]["inputs"]), 1.0)]
    predicted = client.post(f"/v1/models/{card['id']}/predict", json={"rows": rows})
    assert predicted.status_code == 200, predicted.text
    assert 0.0 <= predicted.json()["predictions"][0]["probabilities"]["1"] <= 1.0
    # The leaderboard as a spreadsheet.
    exported = client.get(f"/v1/jobs/{job['id']}/trials", headers={"Accept": "text/csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(row["number"]) for row in table] == [t["number"] for t in trials]
    assert [row["optimizer"] for row in table] == optimizers


def test_a_cross_validated_search_scores_each_trial_by_its_mean_over_folds(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path]
) -> None:
    """3 folds: each trial trains on each fold, its score is the mean, its spread is reported."""
    dataset = upload(client, csvs["iris"])
    spec = {
        "model": {"layers": [{"units": {"int": [8, 32], "step": 8}}]},
        "training": {"epochs": 5},
        "evaluation": {"test_fraction": 0.2, "folds": 3},
        "search": {"max_trials": 2, "max_concurrent_trials": 1},
    }
    job = wait_job(client, _search(client, dataset["id"], spec)["id"])
    assert job["status"] == "succeeded", job.get("error")
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert len(trials) == 2
    for trial in trials:
        runs = trial["metrics"]["executions"]
        assert [run["fold"] for run in runs] == [0, 1, 2]
        scores = [run["score"] for run in runs]
        assert trial["score"] == pytest.approx(np.mean(scores))
        assert trial["metrics"]["cross_validation"] == {
            "folds": 3,
            "mean": pytest.approx(np.mean(scores)),
            "std": pytest.approx(np.std(scores)),
        }
    best = max(trials, key=lambda t: t["score"])
    assert job["best"]["cross_validation"]["mean"] == pytest.approx(best["score"])
    assert job["best"]["test_rows"] == 30
    train_job = client.post(
        "/v1/jobs",
        json={
            "kind": "train",
            "dataset_id": dataset["id"],
            "target": "target",
            "spec": {"evaluation": {"folds": 3}},
        },
    )
    assert train_job.status_code == 422 and "folds" in train_job.json()["detail"]


def _refit_of_a_learning_rate_grid(
    client: TestClient, dataset_id: str, evaluation: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A grid over learning rate {0.01, 1e-7} (the second barely learns) of one 8-unit layer, refit as
    ``evaluation`` says: the succeeded job, its trials and the chosen trial (0.01's)."""
    spec = {
        "model": {"layers": [{"units": 8}]},
        "training": {"epochs": 15, "learning_rate": {"choice": [0.01, 1e-7]}},
        "evaluation": evaluation,
        "search": {"algorithm": "grid", "max_trials": 2, "max_concurrent_trials": 1},
    }
    job = wait_job(client, _search(client, dataset_id, spec)["id"])
    assert job["status"] == "succeeded", job.get("error")
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()
    chosen = next(t for t in trials if t["number"] == job["best"]["number"])
    assert chosen["hyperparameters"]["learning_rate"] == 0.01
    return job, trials, chosen


def test_a_refit_search_saves_its_best_configuration_retrained_on_train_and_validation_rows(
    client: TestClient,
    worker: subprocess.Popen[bytes],
    predictor: subprocess.Popen[bytes],
    csvs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """evaluation.refit: the saved model is the best trial retrained for its best epoch count on more rows;
    of the two trials, the one that barely learned (learning rate 1e-7) is not refit beside it."""
    dataset = upload(client, csvs["breast_cancer"])
    evaluation = {"test_fraction": 0.2, "refit": True, "refit_trials": 2, "refit_seeds": 2}
    job, _, chosen = _refit_of_a_learning_rate_grid(client, dataset["id"], evaluation)
    best = job["best"]
    epochs = chosen["metrics"]["best_epoch"]["epoch"]
    # refit_trials 2: two picks, with replacement, on the trials' own validation outputs. Averaged with
    # the untrained trial the best one's validation loss rises, so the best is picked twice: its
    # configuration refit from 2 x 2 seeds.
    refit = best["refit"]
    assert refit == {
        "epochs": epochs,
        "train_rows": 455,
        "seeds": 2,
        "trials": [best["number"]],
        "networks": [4],
    }
    assert chosen["metrics"]["final"]["train_rows"] == 364  # the trial trained on 80% of those 455
    assert "val" not in best and "test_accuracy" in best["test"]  # judged on unseen rows only
    card = client.get(f"/v1/models/{best['model_id']}").json()
    assert card["metrics"]["train_rows"] == 455 and "val_accuracy" not in card["metrics"]
    path = tmp_path / "refit.keras"
    path.write_bytes(client.get(f"/v1/models/{card['id']}/download").content)
    saved = keras.saving.load_model(path, safe_mode=True)
    # The best configuration refit from seeds 1 to 4, averaged: four different networks in one model.
    members = [layer for layer in saved.layers if isinstance(layer, keras.Model)]
    assert len(members) == 4
    kernels = [next(w for w in m.weights if "kernel" in w.path).numpy() for m in members]
    assert all(not np.array_equal(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1 :])
    rows = [dict.fromkeys((f["column"] for f in card["input_schema"]["inputs"]), 1.0)]
    predicted = client.post(f"/v1/models/{card['id']}/predict", json={"rows": rows})
    assert predicted.status_code == 200, predicted.text
    with_ensemble = client.post(
        "/v1/jobs",
        json={
            "kind": "search",
            "dataset_id": dataset["id"],
            "target": "target",
            "spec": {"evaluation": {"refit": True, "ensemble": 3}},
        },
    )
    assert with_ensemble.status_code == 422 and "ensemble" in with_ensemble.text


def test_a_cross_validated_refit_judges_its_picks_out_of_fold_and_leaves_no_fold_model_behind(
    client: TestClient, worker: subprocess.Popen[bytes], csvs: dict[str, Path], settings: Settings
) -> None:
    """folds 3 with a refit of 2 picks: each trial trains once per fold and keeps each fold's model
    until the end; the untrained trial is not picked (judged on out-of-fold outputs of all 455 rows); the
    refit trains for the median of the folds' stopping epochs; once the job ends no fold model is left."""
    dataset = upload(client, csvs["breast_cancer"])
    evaluation = {"test_fraction": 0.2, "folds": 3, "refit": True, "refit_trials": 2}
    job, trials, chosen = _refit_of_a_learning_rate_grid(client, dataset["id"], evaluation)
    best = job["best"]
    executions = chosen["metrics"]["executions"]
    assert [e["fold"] for e in executions] == [0, 1, 2]
    stopped = sorted(e["best_epoch"] for e in executions)
    assert best["refit"] == {
        "epochs": stopped[1],
        "train_rows": 455,
        "seeds": 1,
        "trials": [best["number"]],
        "networks": [2],
    }
    assert best["cross_validation"]["folds"] == 3 and "test_accuracy" in best["test"]
    folder = settings.data_dir / "models" / "trials"
    assert not [p.name for t in trials for p in folder.glob(f"{t['id']}.fold*")], "fold models left behind"

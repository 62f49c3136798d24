"""The fast engine (compiled JAX loop, vectorized populations) against the reference engine (model.fit)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import keras
import numpy as np
import pandas as pd
import pytest

from models.spec import resolve_spec
from models.status import JobKind
from models.tabular import parse_csv
from tests.training.conftest import Collector, train
from worker.training.engines import Run
from worker.training.fast.loop import run_chunk
from worker.training.train import train_runs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def separable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,000 rows, 6 features, a noisy linear boundary: both engines should plateau at the same accuracy."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(4000, 6)) * np.array([1, 3, 10, 0.1, 1, 5])
    logits = x @ np.array([1.0, -0.3, 0.1, 5.0, 0.0, 0.2]) + rng.normal(scale=0.3, size=4000)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).assign(label=(logits > 0).astype(int))
    path = tmp_path_factory.mktemp("fast") / "separable.csv"
    frame.to_csv(path, index=False)
    return path


def test_fast_and_reference_engines_agree_on_small_data(separable: Path, tmp_path: Path) -> None:
    """Same spec and seed: val accuracy within 1 point, stopping epoch within patience, same history keys."""
    spec = {"training": {"epochs": 60, "early_stopping": {"patience": 5, "min_delta": 0.005}}}
    fast, fast_epochs = train(
        separable, "label", spec | {"training": spec["training"] | {"engine": "fast"}}, tmp_path
    )
    ref, ref_epochs = train(
        separable, "label", spec | {"training": spec["training"] | {"engine": "reference"}}, tmp_path
    )
    assert fast.engine is not None and fast.engine.engine == "fast"
    assert ref.engine is not None and ref.engine.engine == "reference"
    assert abs(fast.metrics["val_accuracy"] - ref.metrics["val_accuracy"]) <= 0.01
    assert abs(fast.epochs_run - ref.epochs_run) <= 5
    assert set(fast_epochs.epochs[0][1]) == set(ref_epochs.epochs[0][1])
    assert set(fast_epochs.epochs[0][2]) == set(ref_epochs.epochs[0][2]) == {"dense_0", "dense_1", "output"}
    assert set(fast.metrics) == set(ref.metrics)
    # The saved file is the same kind of model: raw rows in, preprocessing inside, safe_mode loading.
    model = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    frame = pd.read_csv(separable).head(5)
    rows = {f"f{i}": frame[f"f{i}"].to_numpy("float32").reshape(-1, 1) for i in range(6)}
    assert model.predict(rows, verbose=0).shape == (5, 1)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_a_saved_model_loads_without_warnings(separable: Path, tmp_path: Path, engine: str) -> None:
    """The downloaded file loads and predicts raw rows with nothing printed (no skipped optimizer state)."""
    train(separable, "label", {"training": {"engine": engine, "epochs": 2}}, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    frame = pd.read_csv(separable).head(3)
    assert model.predict(
        {f"f{i}": frame[f"f{i}"].to_numpy("float32") for i in range(6)}, verbose=0
    ).shape == (3, 1)


def test_early_stopping_restores_the_best_epoch_on_the_fast_engine(separable: Path, tmp_path: Path) -> None:
    """Patience counts epochs without improvement; the kept weights are the best epoch's (val_loss)."""
    spec = {
        "training": {
            "engine": "fast",
            "epochs": 200,
            "learning_rate": 0.05,
            "early_stopping": {"patience": 3},
        }
    }
    result, collected = train(separable, "label", spec, tmp_path)
    losses = [values["val_loss"] for _, values, _ in collected.epochs]
    best = int(np.argmin(losses))
    assert result.epochs_run == best + 1 + 3 < 200
    assert result.best_epoch == best + 1
    assert result.metrics["val_loss"] == pytest.approx(losses[best], rel=1e-4)


def test_a_deep_network_matches_model_fit_epoch_for_epoch(separable: Path, tmp_path: Path) -> None:
    """Full-batch SGD from the same initial weights (so no shuffle or dropout draw differs): six layers
    of mixed widths and activations (past the fourth, the fast engine runs its layers as one compiled
    loop), with batch normalization and clipnorm, give model.fit's losses and gradient norms."""
    units, activations = (12, 8, 16, 4, 10, 6), ("relu", "tanh", "sigmoid") * 2
    spec = {
        "model": {
            "layers": [{"units": u, "activation": a} for u, a in zip(units, activations, strict=True)],
            "batch_norm": True,
        },
        "training": {
            "epochs": 3,
            "batch_size": 4000,  # more than the training rows: one step per epoch
            "optimizer": "sgd",
            "learning_rate": 0.5,
            "clipnorm": 0.05,
            "early_stopping": None,
        },
    }
    epochs = {}
    for engine in ("fast", "reference"):
        (tmp_path / engine).mkdir()
        result, collected = train(
            separable, "label", spec | {"training": spec["training"] | {"engine": engine}}, tmp_path / engine
        )
        assert result.engine is not None and result.engine.engine == engine
        epochs[engine] = collected.epochs
    assert len(epochs["fast"]) == len(epochs["reference"]) == 3
    for (_, fast, fast_grads), (_, ref, ref_grads) in zip(epochs["fast"], epochs["reference"], strict=True):
        assert fast["loss"] == pytest.approx(ref["loss"], rel=1e-3)
        assert fast["val_loss"] == pytest.approx(ref["val_loss"], rel=1e-3)
        assert set(fast_grads) == {f"dense_{i}" for i in range(6)} | {"output"}
        assert fast_grads == pytest.approx(ref_grads, rel=1e-2, abs=1e-6)
    assert epochs["fast"][-1][1]["loss"] != pytest.approx(epochs["fast"][0][1]["loss"], rel=1e-3)  # it learns


def test_a_network_without_hidden_layers_trains_on_the_fast_engine(separable: Path, tmp_path: Path) -> None:
    """The default search's depth 0 (a linear model): trained, probed and saved by the fast engine."""
    spec = {"model": {"layers": []}, "training": {"engine": "fast", "epochs": 5, "learning_rate": 0.05}}
    result, collected = train(separable, "label", spec, tmp_path)
    assert result.engine is not None and result.engine.engine == "fast"
    assert [e for e, _, _ in collected.epochs] == [1, 2, 3, 4, 5]
    assert all(set(grads) == {"output"} and grads["output"] > 0 for _, _, grads in collected.epochs)
    assert result.metrics["val_accuracy"] > 0.8  # the labels are nearly linear in the features
    assert keras.saving.load_model(tmp_path / "model.keras", safe_mode=True) is not None


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_a_linear_model_is_regularized_on_its_output_kernel_by_both_engines(
    separable: Path, tmp_path: Path, penalty: str
) -> None:
    """Without hidden layers, L1 or L2 goes on the only kernel there is (they once went nowhere): a
    regularized linear model, as scikit-learn's, with the same strength on both engines."""
    norms: dict[tuple[str, float], float] = {}
    for engine in ("fast", "reference"):
        for strength in (0.0, 0.05):
            spec = {
                "model": {"layers": [], penalty: strength},
                "training": {"engine": engine, "epochs": 40, "learning_rate": 0.05, "early_stopping": None},
            }
            folder = tmp_path / f"{engine}-{strength}"
            folder.mkdir()
            result, _ = train(separable, "label", spec, folder)
            assert result.engine is not None and result.engine.engine == engine
            model = keras.saving.load_model(folder / "model.keras", safe_mode=True)
            norms[engine, strength] = float(np.linalg.norm(model.get_layer("output").get_weights()[0]))
    for engine in ("fast", "reference"):
        assert norms[engine, 0.05] < 0.6 * norms[engine, 0.0]  # the penalty shrinks the weights
    # The same penalty on both engines: their regularized weights agree far closer than to unregularized.
    assert norms["fast", 0.05] == pytest.approx(norms["reference", 0.05], rel=0.05)


def _specs(csv: Path, target: str, specs: list[dict]) -> list:
    columns = parse_csv(csv.read_bytes()).columns
    return [resolve_spec(s, kind=JobKind.TRAIN, target=target, columns=columns) for s in specs]


def test_each_member_of_a_population_trains_as_if_alone(data: dict[str, Path]) -> None:
    """Padded to the widest and deepest member, each member's epochs match its own run alone."""
    base = {"training": {"epochs": 6, "early_stopping": None}}
    shapes = [
        {"model": {"layers": [{"units": 8}]}},
        {
            "model": {"layers": [{"units": 24, "activation": "tanh"}] * 3},
            "training": {"optimizer": "rmsprop"},
        },
        {"model": {"layers": [{"units": 16, "activation": "sigmoid"}] * 2}, "training": {"optimizer": "sgd"}},
    ]
    specs = _specs(
        data["breast_cancer"],
        "target",
        [base | s | {"training": base["training"] | s.get("training", {})} for s in shapes],
    )
    together = [Collector() for _ in specs]
    results = train_runs(
        csv_path=data["breast_cancer"],
        has_header=True,
        target="target",
        runs=[Run(s, c, None) for s, c in zip(specs, together, strict=True)],
    )
    [filler] = _specs(data["breast_cancer"], "target", [base | {"model": {"layers": [{"units": 1}]}}])
    for spec, collected, result in zip(specs, together, results, strict=True):
        # "Alone": beside a one-unit network only, so the program is padded to this member's own shape
        # (a population of one would start from a Keras model's initialization instead).
        alone = Collector()
        single, _ = train_runs(
            csv_path=data["breast_cancer"],
            has_header=True,
            target="target",
            runs=[Run(spec, alone, None), Run(filler, Collector(), None)],
        )
        assert [e for e, _, _ in collected.epochs] == list(range(1, 7))
        for (_, mine, grads), (_, own, own_grads) in zip(collected.epochs, alone.epochs, strict=True):
            assert mine["val_loss"] == pytest.approx(own["val_loss"], rel=1e-3, abs=1e-5)
            assert mine["loss"] == pytest.approx(own["loss"], rel=1e-3, abs=1e-5)
            assert set(grads) == {f"dense_{i}" for i in range(len(spec.model.layers))} | {"output"}
            assert grads == pytest.approx(own_grads, rel=1e-2, abs=1e-6)
        assert result.metrics["val_accuracy"] == pytest.approx(single.metrics["val_accuracy"], abs=1e-6)
    assert len({round(r.metrics["val_loss"], 6) for r in results}) == 3  # three different models


def test_programs_trained_side_by_side_give_each_member_its_own_epochs(
    data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three programs (batch sizes differ) on three threads train exactly as one after another."""
    specs = _specs(
        data["breast_cancer"],
        "target",
        [
            {
                "model": {"layers": [{"units": 8 * (i + 1)}] * (i + 1)},
                "training": {"epochs": 4, "batch_size": b},
            }
            for i, b in enumerate((16, 32, 64))
        ],
    )
    runs: dict[str, list[Collector]] = {}
    for lanes in ("1", "3"):
        monkeypatch.setenv("TUNEFORGE_TRAINING_LANES", lanes)
        runs[lanes] = [Collector() for _ in specs]
        results = train_runs(
            csv_path=data["breast_cancer"],
            has_header=True,
            target="target",
            runs=[Run(s, c, None) for s, c in zip(specs, runs[lanes], strict=True)],
        )
        assert all(r.failure is None and r.metrics["val_accuracy"] > 0.8 for r in results)
    for alone, side_by_side in zip(runs["1"], runs["3"], strict=True):
        assert [e for e, _, _ in side_by_side.epochs] == [1, 2, 3, 4]
        for (_, one, _), (_, other, _) in zip(alone.epochs, side_by_side.epochs, strict=True):
            assert other["val_loss"] == pytest.approx(one["val_loss"], rel=1e-6)


def test_a_worker_keeps_at_most_the_configured_programs_in_memory(
    data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within TUNEFORGE_PROGRAMS_IN_MEMORY a compiled program stays for the next job; past it every
    program is dropped from memory (they reload from the disk cache), so a long-lived worker stays flat."""
    specs = _specs(
        data["breast_cancer"],
        "target",
        [{"model": {"layers": [{"units": 8}] * depth}, "training": {"epochs": 1}} for depth in (1, 2)],
    )
    monkeypatch.setenv("TUNEFORGE_PROGRAMS_IN_MEMORY", "1")
    jax.clear_caches()  # programs other tests left
    held = []
    for spec in specs:  # two jobs, two program sizes (depth 1, then 2)
        (result,) = train_runs(
            csv_path=data["breast_cancer"],
            has_header=True,
            target="target",
            runs=[Run(spec, Collector(), None)],
        )
        assert result.failure is None and result.engine is not None and result.engine.engine == "fast"
        held.append(run_chunk._cache_size())
    assert held == [1, 0]


def test_a_population_member_that_diverges_fails_alone(data: dict[str, Path]) -> None:
    """A NaN loss fails that member with training_diverged; its neighbours in the program are unharmed."""
    healthy = {"training": {"epochs": 4, "optimizer": "sgd", "learning_rate": 1e-4}}
    broken = {
        "training": {"epochs": 4, "optimizer": "sgd", "learning_rate": 5.0},
        "preprocessing": {"normalization": "none"},
    }
    unscaled = {"preprocessing": {"normalization": "none"}} | {"training": healthy["training"]}
    specs = _specs(data["diabetes"], "target", [unscaled, broken])
    results = train_runs(
        csv_path=data["diabetes"],
        has_header=True,
        target="target",
        runs=[Run(s, Collector(), None) for s in specs],
    )
    assert results[0].failure is None and np.isfinite(results[0].metrics["val_loss"])
    assert results[1].failure is not None and results[1].failure.code == "training_diverged"


def test_the_fast_engine_runs_on_keras_jax_backend(data: dict[str, Path], tmp_path: Path) -> None:
    """KERAS_BACKEND=jax (the GPU workers' backend) trains, saves, reloads and runs the model on CPU."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        import keras
        assert keras.backend.backend() == "jax"
        from tests.training.conftest import train
        result, collected = train(Path({str(data["breast_cancer"])!r}), "target",
                                  {{"training": {{"epochs": 5, "engine": "fast"}}}}, Path({str(tmp_path)!r}))
        assert result.engine.engine == "fast" and len(collected.epochs) == 5
        model = keras.saving.load_model(Path({str(tmp_path)!r}) / "model.keras", safe_mode=True)
        # Evaluation and predictions call the model directly, in chunks: as predict does on this backend.
        import numpy as np
        import pandas as pd
        from worker.training import predictions
        from worker.training.inputs import frame_to_inputs, to_tensors
        frame = pd.read_csv(Path({str(data["breast_cancer"])!r})).drop(columns="target")
        inputs = to_tensors(frame_to_inputs(frame, result.input_schema["inputs"]))
        predictions.CHUNK_ROWS = 100
        np.testing.assert_allclose(predictions.raw_outputs(model, inputs), model.predict(inputs, verbose=0),
                                   atol=1e-5)
        print("VAL_ACCURACY", result.metrics["val_accuracy"])
        """
    )
    env = os.environ | {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = float(done.stdout.split("VAL_ACCURACY")[1])
    assert accuracy >= 0.9


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 rows, 1 in 12 positive, overlapping classes: unweighted training mostly answers 'no'."""
    rng = np.random.default_rng(5)
    y = (rng.random(3000) < 1 / 12).astype(int)
    x = rng.normal(size=(3000, 3)) + y[:, None] * np.array([1.2, 0.8, 0.0])
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=y)
    path = tmp_path_factory.mktemp("imbalanced") / "imbalanced.csv"
    frame.to_csv(path, index=False)
    return path


def _recall(model_path: Path, csv: Path) -> float:
    frame = pd.read_csv(csv)
    model = keras.saving.load_model(model_path, safe_mode=True)
    rows = {c: frame[c].to_numpy("float32").reshape(-1, 1) for c in ("a", "b", "c")}
    predicted = model.predict(rows, verbose=0).reshape(-1) > 0.5
    return float(predicted[frame["label"] == 1].mean())


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_balanced_class_weights_find_the_rare_class(imbalanced: Path, tmp_path: Path, engine: str) -> None:
    """training.class_weight=balanced: the rare class's recall rises well above unweighted training's."""
    recalls = {}
    for weighting in ("none", "balanced"):
        spec = {"training": {"epochs": 20, "engine": engine, "class_weight": weighting}}
        result, epochs = train(imbalanced, "label", spec, tmp_path)
        assert result.engine is not None and result.engine.engine == engine
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs.epochs[0][1])
        recalls[weighting] = _recall(tmp_path / "model.keras", imbalanced)
    assert recalls["none"] < 0.5 and recalls["balanced"] > recalls["none"] + 0.25, recalls

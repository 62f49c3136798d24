"""Train many runs at once: bucket them by what must be static, pad each bucket, run its compiled loop."""

from __future__ import annotations

import contextvars
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import structlog

from models.spec import JobSpec
from worker.training.builder import initializer_for
from worker.training.checkpoints import Checkpoint
from worker.training.diagnostics import Measurement
from worker.training.fast.buckets import split_by_shape
from worker.training.fast.initializers import draw
from worker.training.fast.loop import MAX_CHUNK, Plan, final_metrics, run_chunk, start_members
from worker.training.fast.memory import bound_programs
from worker.training.fast.network import Shape, layer_kernel
from worker.training.fast.optimizers import OPTIMIZERS
from worker.training.fast.programs import Size, compiled_sizes, remember
from worker.training.reporting import Epochs, Reporter, report_together

log = structlog.get_logger(__name__)

CHUNK_SECONDS = 1.0  # aim for one host round trip (report, cancel check) per second of training
MAX_CHUNK_SECONDS = 10.0  # ...and at least one every this many, however slow reporting is
COMMON_ACTIVATIONS = ("relu", "sigmoid", "tanh")
Group = tuple[list[int], Size]  # members' indices, and the (depth, width, members) of their program


@dataclass
class Matrices:
    """A run's data after preprocessing: what the model's first Dense layer sees, and the targets."""

    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    target_scale: tuple[float, float]
    class_weights: np.ndarray | None = None  # per class, for training.class_weight; None: unweighted


@dataclass
class Member:
    """One run in a population: its concrete spec and where its epochs go."""

    spec: JobSpec
    reporter: Reporter
    # Starting weights per Keras layer name (a Keras model's own initialization); None: drawn here.
    initial: dict[str, list[np.ndarray]] | None = None
    checkpoint: Checkpoint | None = None


@dataclass
class MemberResult:
    """What one run produced: history, probe readings, final metrics and its (unpadded) weights."""

    history: list[dict[str, float]] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    diverged_at: int | None = None
    cancelled: bool = False


def _bucket_key(spec: JobSpec) -> tuple[Any, ...]:
    t, stopping = spec.training, spec.training.early_stopping
    return (
        t.clipnorm is not None,
        t.clipvalue is not None,
        t.batch_size,
        spec.model.batch_norm,
        len(spec.model.layers) == 0,
        None if stopping is None else (stopping.monitor, stopping.restore_best_weights),
    )


def _family(members: list[Member], data: Matrices) -> Plan:
    """What every program of a bucket shares: all of its plan but the size (depth 0, width 0 here)."""
    spec = members[0].spec
    activations: set[str] = {layer.activation for m in members for layer in m.spec.model.layers} or {"linear"}
    if len(activations) > 1:
        # A program choosing per layer computes each of its activations (tanh and sigmoid as one):
        # the guide's three are always among them, so searches mixing them share one program.
        activations |= set(COMMON_ACTIVATIONS)
    shape = Shape(
        task=data.task,
        n_features=data.x_train.shape[1],
        n_outputs=data.n_classes if data.task == "multiclass" else 1,
        depth=0,
        width=0,
        activations=tuple(sorted(activations)),
        batch_norm=spec.model.batch_norm,
    )
    stopping = spec.training.early_stopping
    names = shape.metric_names()
    monitor = names.index(stopping.monitor) if stopping and stopping.monitor in names else None
    return Plan(
        shape=shape,
        clipnorm=spec.training.clipnorm is not None,
        clipvalue=spec.training.clipvalue is not None,
        batch_size=spec.training.batch_size,
        n_train=data.x_train.shape[0],
        monitor=monitor,
        maximize=bool(stopping and stopping.maximize),
        restore_best=bool(stopping and stopping.restore_best_weights and monitor is not None),
        dropout=any(layer.dropout > 0 for m in members for layer in m.spec.model.layers),
        weighted=data.class_weights is not None,
    )


def _sized(family: Plan, depth: int, width: int) -> Plan:
    return dataclasses.replace(family, shape=dataclasses.replace(family.shape, depth=depth, width=width))


def _config(plan: Plan, spec: JobSpec, data: Matrices) -> dict[str, Any]:
    shape, layers = plan.shape, spec.model.layers
    units = np.zeros((shape.depth, shape.width), np.float32)
    for i, layer in enumerate(layers):
        units[i, : layer.units] = 1.0
    stopping, t = spec.training.early_stopping, spec.training
    return {
        "units": units,
        "last": np.int32(len(layers) - 1),  # the hidden layer the output reads
        "activation": np.array(
            [
                shape.activations.index(layers[i].activation) if i < len(layers) else 0
                for i in range(shape.depth)
            ],
            np.int32,
        ),
        "dropout": np.array(
            [layers[i].dropout if i < len(layers) else 0.0 for i in range(shape.depth)], np.float32
        ),
        "optimizer": np.int32(OPTIMIZERS.index(t.optimizer)),
        "learning_rate": np.float32(t.applied_learning_rate),
        "l1": np.float32(spec.model.l1),
        "l2": np.float32(spec.model.l2),
        "clipnorm": np.float32(t.clipnorm or 0.0),
        "clipvalue": np.float32(t.clipvalue or 0.0),
        "patience": np.int32(stopping.patience if stopping else 0),
        "min_delta": np.float32(stopping.min_delta if stopping else 0.0),
        "max_epochs": np.int32(t.epochs),
        "target_mean": np.float32(data.target_scale[0]),
        "target_std": np.float32(data.target_scale[1]),
    }


def _init_params(plan: Plan, member: Member) -> dict[str, Any]:
    """The member's own initial weights (its true fan-in/fan-out), placed in zero padding."""
    spec = member.spec
    shape, layers = plan.shape, spec.model.layers
    seed = spec.training.seed
    params: dict[str, Any] = {
        "out_kernel": np.zeros((shape.last_width, shape.n_outputs), np.float32),
        "out_bias": np.zeros(shape.n_outputs, np.float32),
    }
    if shape.depth:
        params["kernel_in"] = np.zeros((shape.n_features, shape.width), np.float32)
        params["kernel"] = np.zeros((shape.depth - 1, shape.width, shape.width), np.float32)
        params["bias"] = np.zeros((shape.depth, shape.width), np.float32)
    fan_in = shape.n_features
    for i, layer in enumerate(layers):
        # One stream per (seed, layer): a member's draws do not depend on its program's padding.
        name = initializer_for(spec.model.initializer, layer.activation)
        layer_kernel(params, i)[:fan_in, : layer.units] = draw(
            name, (fan_in, layer.units), np.random.default_rng([seed, i])
        )
        fan_in = layer.units
    params["out_kernel"][:fan_in] = draw(
        "glorot_uniform", (fan_in, shape.n_outputs), np.random.default_rng([seed, 1_000_000])
    )
    if shape.batch_norm:
        params["gamma"] = np.ones((shape.depth, shape.width), np.float32)
        params["beta"] = np.zeros((shape.depth, shape.width), np.float32)
    if member.initial is not None:
        for i in range(len(layers)):
            kernel, bias = member.initial[f"dense_{i}"]
            layer_kernel(params, i)[: kernel.shape[0], : kernel.shape[1]] = kernel
            params["bias"][i, : bias.shape[0]] = bias
        kernel, bias = member.initial["output"]
        params["out_kernel"][: kernel.shape[0]] = kernel
        params["out_bias"][:] = bias
    return params


def _stack(trees: list[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def _unpadded(
    plan: Plan, spec: JobSpec, params: dict[str, Any], stats: dict[str, Any], p: int
) -> dict[str, list]:
    """Per Keras layer name, the member's weights in Keras' order (kernel, bias; gamma, beta, mean, var)."""
    weights: dict[str, list[np.ndarray]] = {}
    fan_in = plan.shape.n_features
    for i, layer in enumerate(spec.model.layers):
        u = layer.units
        kernel = layer_kernel(params, i, member=p)
        weights[f"dense_{i}"] = [np.asarray(kernel[:fan_in, :u]), np.asarray(params["bias"][p, i, :u])]
        if plan.shape.batch_norm:
            weights[f"batch_norm_{i}"] = [
                np.asarray(params["gamma"][p, i, :u]),
                np.asarray(params["beta"][p, i, :u]),
                np.asarray(stats["mean"][p, i, :u]),
                np.asarray(stats["var"][p, i, :u]),
            ]
        fan_in = u
    weights["output"] = [np.asarray(params["out_kernel"][p][:fan_in]), np.asarray(params["out_bias"][p])]
    return weights


def _record(
    plan: Plan, members: list[Member], results: list[MemberResult], buffers: dict, count: int
) -> None:
    names = plan.shape.metric_names()
    host = {k: np.asarray(v)[:count] for k, v in buffers.items()}
    batches: list[tuple[Reporter, Epochs]] = []
    for p, (member, result) in enumerate(zip(members, results, strict=True)):
        spec, batch = member.spec, []
        layers = [f"dense_{i}" for i in range(len(spec.model.layers))] + ["output"]
        columns = [*range(len(spec.model.layers)), plan.shape.depth]
        for e in range(count):
            if not host["ran"][e, p]:
                continue
            values = {name: float(v) for name, v in zip(names, host["metrics"][e, p], strict=True)}
            values["lr"] = spec.training.applied_learning_rate
            dead = {
                f"relu_{i}": float(host["dead"][e, p, i])
                for i, layer in enumerate(spec.model.layers)
                if layer.activation == "relu"
            }
            if dead:
                values["dead_relu_max"] = max(dead.values())
            applied = {n: float(host["applied"][e, p, c]) for n, c in zip(layers, columns, strict=True)}
            raw = {n: float(host["raw"][e, p, c]) for n, c in zip(layers, columns, strict=True)}
            result.measurements.append(Measurement(grad_norms=applied, raw_grad_norms=raw, dead_relu=dead))
            result.history.append(values)
            batch.append((len(result.history), values, applied))
            if result.diverged_at is None and not all(
                math.isfinite(v) for k, v in values.items() if k.endswith("loss")
            ):
                result.diverged_at = len(result.history)
        if batch:
            batches.append((member.reporter, batch))
    if batches:
        report_together(batches)


def _program(plan: Plan) -> str:
    # A checkpoint fits only the program that wrote it (same padding, optimizers, batch size).
    return repr(plan)


def _resume(
    plan: Plan, members: list[Member], results: list[MemberResult], state: dict[str, Any]
) -> dict[str, Any]:
    """Members with a checkpoint of this very program continue from it; the rest start fresh."""
    leaves, tree = jax.tree_util.tree_flatten(state)
    host: list[np.ndarray] | None = None
    for p, member in enumerate(members):
        loaded = member.checkpoint.load() if member.checkpoint else None
        if loaded is None or loaded[1].get("program") != _program(plan):
            continue
        arrays, meta = loaded
        host = host or [np.array(leaf) for leaf in leaves]
        for i, leaf in enumerate(host):
            leaf[p] = arrays[f"leaf_{i}"]
        results[p].history = meta["history"]
        results[p].measurements = [Measurement(**m) for m in meta["measurements"]]
    return state if host is None else jax.tree_util.tree_unflatten(tree, [jnp.asarray(h) for h in host])


def _checkpoint(
    plan: Plan,
    members: list[Member],
    results: list[MemberResult],
    state: dict[str, Any],
    *,
    force: list[bool],
) -> None:
    """Save the members that are still training, when their checkpoint is due (or ``force``d)."""
    due = [
        p
        for p, m in enumerate(members)
        if m.checkpoint and (force[p] or m.checkpoint.due()) and not results[p].cancelled
    ]
    if not due:
        return
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]
    stopped = np.asarray(state["stopped"])
    for p in due:
        if stopped[p]:
            continue  # finished: its result is written in moments, nothing left to resume
        checkpoint = members[p].checkpoint
        assert checkpoint is not None
        meta = {
            "engine": "fast",
            "program": _program(plan),
            "size": [plan.shape.depth, plan.shape.width, len(stopped)],
            "epoch": len(results[p].history),
            "history": results[p].history,
            "measurements": [dataclasses.asdict(m) for m in results[p].measurements],
        }
        checkpoint.save({f"leaf_{i}": leaf[p] for i, leaf in enumerate(leaves)}, meta)


def _train_bucket(
    members: list[Member],
    plan: Plan,
    size: int,
    data: Matrices,
    arrays: dict[str, Any],
    abort: threading.Event | None = None,
) -> list[MemberResult]:
    """Train ``members`` in the program of ``plan`` built for ``size`` members (until ``abort`` is set:
    then they stop as if cancelled)."""
    # Idle copies of the first member fill the program to its size; they start stopped.
    slots = [*members, *[members[0]] * (size - len(members))]
    cfgs = _stack([_config(plan, m.spec, data) for m in slots])
    seeds = np.array([m.spec.training.seed for m in slots], np.uint32)
    state = start_members(plan, _stack([_init_params(plan, m) for m in slots]), cfgs, seeds)
    state = dict(state, stopped=state["stopped"] | jnp.asarray(np.arange(len(slots)) >= len(members)))
    results = [MemberResult() for _ in members]
    state = _resume(plan, members, results, state)
    limit = 1
    while True:
        started = time.monotonic()
        state, buffers, count = run_chunk(plan, state, cfgs, arrays, np.int32(limit))
        count = int(count)
        trained = time.monotonic()
        _record(plan, members, results, buffers, count)
        leaving = [m.reporter.handing_back() for m in members]  # the worker is shutting down
        _checkpoint(plan, members, results, state, force=leaving)
        aborted = abort is not None and abort.is_set()
        cancelled = [
            m.reporter.should_stop() or gone or aborted for m, gone in zip(members, leaving, strict=True)
        ]
        for p, flag in enumerate(cancelled):
            results[p].cancelled = results[p].cancelled or (flag and not bool(state["stopped"][p]))
        if any(cancelled):
            cancelled += [False] * (len(slots) - len(members))
            state = dict(state, stopped=state["stopped"] | jnp.array(cancelled))
        if bool(jnp.all(state["stopped"])):
            break
        per_epoch = (trained - started) / max(count, 1)
        # Reporting (a transaction per chunk) may take a fifth of the time at most: a large population
        # reports less often rather than train less.
        seconds = min(MAX_CHUNK_SECONDS, max(CHUNK_SECONDS, 4 * (time.monotonic() - trained)))
        limit = int(min(MAX_CHUNK, max(1, seconds / max(per_epoch, 1e-6))))
    if all(r.cancelled for r in results):
        return results  # nobody wants their weights: skip the final evaluation
    # To host once: slicing device arrays per member would compile a slice per shape.
    params = jax.tree_util.tree_map(
        np.asarray, state["best_params"] if plan.restore_best else state["params"]
    )
    stats = jax.tree_util.tree_map(np.asarray, state["best_stats"] if plan.restore_best else state["stats"])
    val, train = final_metrics(plan, params, stats, cfgs, arrays)
    names = plan.shape.metric_names()[: len(plan.shape.metric_names()) // 2]
    y_var = {"val_": float(np.var(data.y_val)), "": float(np.var(data.y_train))}
    for p, (member, result) in enumerate(zip(members, results, strict=True)):
        for prefix, values in (("val_", val[p]), ("", train[p])):
            result.metrics |= {f"{prefix}{n}": float(v) for n, v in zip(names, values, strict=True)}
            if data.task == "regression":  # r2 = 1 - mse / variance, as sklearn's r2_score
                mse = result.metrics[f"{prefix}rmse"] ** 2
                result.metrics[f"{prefix}r2"] = 1.0 - mse / y_var[prefix] if y_var[prefix] > 0 else 0.0
        result.weights = _unpadded(plan, member.spec, params, stats, p)
    return results


def device_arrays(data: Matrices, probe_rows: int) -> dict[str, Any]:
    """The splits on the accelerator once, shared by every bucket and member."""
    y_dtype = np.int32 if data.task == "multiclass" else np.float32
    rows = min(probe_rows, len(data.y_train))
    weighted = {}
    if data.class_weights is not None:
        weighted["w_train"] = jnp.asarray(data.class_weights[data.y_train.astype(np.int64)], jnp.float32)
    return weighted | {
        "x_train": jnp.asarray(data.x_train, jnp.float32),
        "y_train": jnp.asarray(data.y_train.astype(y_dtype)),
        "x_val": jnp.asarray(data.x_val, jnp.float32),
        "y_val": jnp.asarray(data.y_val.astype(y_dtype)),
        "x_probe": jnp.asarray(data.x_train[:rows], jnp.float32),
        "y_probe": jnp.asarray(data.y_train[:rows].astype(y_dtype)),
    }


def _resumed_groups(members: list[Member], indices: list[int]) -> tuple[list[Group], list[int]]:
    """Members resuming a fast-engine checkpoint, grouped back into the program size that wrote it (no
    other can load it, and the split may choose otherwise now); and the members that start afresh."""
    saved: dict[Size, list[int]] = {}
    fresh = []
    for i in indices:
        checkpoint = members[i].checkpoint
        meta = checkpoint.meta() if checkpoint is not None else None
        size = meta.get("size") if meta and meta.get("engine") == "fast" else None
        if isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) for v in size):
            saved.setdefault((size[0], size[1], size[2]), []).append(i)
        else:
            fresh.append(i)
    groups = [(group, size) for size, group in saved.items() if len(group) <= size[2]]
    fresh += [i for size, group in saved.items() if len(group) > size[2] for i in group]
    return groups, sorted(fresh)


@dataclass
class Program:
    """One compiled program's share of a population: its members (indices), plan and member count."""

    indices: list[int]
    plan: Plan
    size: int
    compiled_before: bool  # by this process or another sharing the cache folder (programs.py)


def _side_by_side(
    train: Callable[[Program], list[MemberResult]],
    programs: list[Program],
    lanes: int,
    abort: threading.Event,
) -> list[list[MemberResult]]:
    """``train`` of each program, up to ``lanes`` at once on threads, in the programs' order.

    One lane trains on the calling thread: Celery's soft time limit (an exception raised in it) then
    interrupts training itself. With threads, the first failure, or an exception in the calling thread,
    sets ``abort``: every program stops at its next chunk boundary, so none trains on for hours unseen.
    """
    if lanes <= 1 or len(programs) <= 1:
        return [train(program) for program in programs]
    pool = ThreadPoolExecutor(max_workers=min(lanes, len(programs)))
    try:
        # Each thread logs with the task's context (job and trial ids), as the calling thread does.
        futures = [pool.submit(contextvars.copy_context().run, train, program) for program in programs]
        wait(futures, return_when=FIRST_EXCEPTION)
        return [future.result() for future in futures]
    except BaseException:
        abort.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def train_population(
    members: list[Member],
    data: Matrices,
    *,
    probe_rows: int,
    lanes: int,
    programs_in_memory: int,
) -> list[MemberResult]:
    """Train every member on the same data, up to ``lanes`` programs at once, keeping at most
    ``programs_in_memory`` compiled programs in memory afterwards; results in the members' order."""
    arrays = device_arrays(data, probe_rows)
    keyed: dict[tuple[Any, ...], list[int]] = {}
    for index, member in enumerate(members):
        keyed.setdefault(_bucket_key(member.spec), []).append(index)
    programs: list[Program] = []
    for same in keyed.values():
        family = _family([members[i] for i in same], data)
        family_key = repr(family)
        before = compiled_sizes(family_key)
        groups, fresh = _resumed_groups(members, same)
        if fresh:
            split = split_by_shape(
                [members[i].spec for i in fresh],
                data.x_train.shape[1],
                rows=len(data.x_train),
                compiled=before,
                # Buckets train side by side too: each balances its programs over its share of the lanes.
                lanes=max(1, lanes // len(keyed)),
            )
            groups += [([fresh[i] for i in group], size) for group, size in split]
        for indices, (depth, width, size) in groups:
            # Noted before training: a worker handing back mid-run leaves its program compiled too.
            remember(family_key, (depth, width, size))
            programs.append(
                Program(indices, _sized(family, depth, width), size, (depth, width, size) in before)
            )
    abort = threading.Event()

    def train(program: Program) -> list[MemberResult]:
        started = time.monotonic()
        trained = _train_bucket(
            [members[i] for i in program.indices], program.plan, program.size, data, arrays, abort
        )
        epochs = [len(r.history) for r in trained]
        log.info(
            "program_trained",
            size=[program.plan.shape.depth, program.plan.shape.width, program.size],
            members=len(trained),
            compiled_before=program.compiled_before,
            epochs_max=max(epochs),
            epochs_total=sum(epochs),
            seconds=round(time.monotonic() - started, 2),
        )
        return trained

    results: list[MemberResult | None] = [None] * len(members)
    for program, trained in zip(programs, _side_by_side(train, programs, lanes, abort), strict=True):
        for index, result in zip(program.indices, trained, strict=True):
            results[index] = result
    bound_programs(programs_in_memory)
    return [r for r in results if r is not None]

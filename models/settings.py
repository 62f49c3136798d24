"""Configuration shared by the API and the workers, read from ``TUNEFORGE_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, computed_field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a tuneforge process; with nothing set, the embedded default (SQLite, files)."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("tuneforge-data"), description="Datasets, models, state.")
    database_url: str | None = Field(default=None, description="Default: SQLite in data_dir.")
    broker_url: str | None = Field(default=None, description="Default: a broker folder in data_dir.")
    queue: str = "tuneforge.jobs"
    predict_timeout_s: float = 30.0
    # Making another format of a model (and checking it) waits at most this long for a worker.
    export_timeout_s: float = 120.0

    # Worker behaviour: the database lease decides who runs a job, not the broker.
    job_soft_time_limit_s: int = 6 * 3600
    job_hard_time_limit_s: int = 6 * 3600 + 300
    lease_timeout_s: int = 120
    heartbeat_interval_s: float = 2.0
    max_attempts: int = 3
    # Queued work is re-sent after this long without starting (then at doubling intervals).
    redispatch_after_s: float = 60
    # How often the reaper (inside beat) looks for lost work; a lost job is picked up within
    # lease_timeout_s + reap_interval_s.
    reap_interval_s: float = 10
    # Training saves its state at an epoch boundary at most this often (less often when saving is slow);
    # a lost run resumes from there.
    checkpoint_every_s: float = 10
    # Searches run many short tasks; a fresh child re-imports TensorFlow (~3.5 s), so recycle rarely
    # and clear Keras state per run instead (keras-tuner#395 leaks are bounded by this).
    worker_max_tasks_per_child: int = 200
    # A fresh worker child loads the training stack (TensorFlow, JAX) while it waits for work, so its
    # first job does not pay the ~3 s import.
    preload_training: bool = True
    # Training workers run at this niceness so that, on a machine they share with the API or the
    # predictor, polls and predictions are served first (training is batch work; 0 turns this off).
    trainer_nice: int = Field(default=10, ge=0, le=19)
    # Programs of one fast-engine population trained at once, each from its own thread (a 10-trial
    # population on 2 cores: 18-20 s one after another, 7-8 s two at a time). None: one per core on a
    # CPU, one on an accelerator. Several workers on one machine share its cores: 1 each is then better.
    training_lanes: int | None = Field(default=None, ge=1, le=256)
    # Fast-engine programs a worker process keeps compiled in memory (~45 MB each on a CPU); past it all
    # are dropped and the next populations reload theirs from the disk cache. A 100-trial guide search
    # meets 5-7 sizes; with 8 sizes in turn (bench/trial_memory.py --shapes varied) a population took
    # 1.7 s at a bound of 4 (reloading) and 0.2 s at 8, for +330 MB held.
    programs_in_memory: int = Field(default=8, ge=1, le=1_000)
    # Prometheus metrics of a worker (its children summed), served by its main process; None: off.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # API limits.
    max_upload_bytes: int = 200 * 1024 * 1024
    # What one upload may hold (422 past them): data rows, columns, characters in one cell.
    max_rows: int = Field(default=2_000_000, ge=1)
    max_columns: int = Field(default=1_000, ge=2)
    max_cell_chars: int = Field(default=4_096, ge=1)
    # A job's estimated training work (6 x weights x rows x epochs x trials x executions): 422 past it.
    max_job_flops: float = Field(default=1e18, gt=0)
    # Per-tenant quotas (429 past them): jobs queued or running at once, bytes of datasets and models.
    max_active_jobs_per_tenant: int = Field(default=100, ge=1)
    max_stored_bytes_per_tenant: int = Field(default=10 * 1024**3, ge=1)
    # Any body that is not a file upload (job specs, predict rows): 413 past it.
    max_json_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    page_size_max: int = 200
    log_json: bool = False
    # API capacity: uvicorn processes, and a database pool sized for the threadpool's requests.
    api_workers: int = Field(default=1, ge=1)
    db_pool_size: int = Field(default=10, ge=1)
    # A key's tenant is remembered this long per API process, so a revocation by another process
    # (``tuneforge keys``) takes effect within this many seconds.
    api_key_cache_s: float = Field(default=5.0, ge=0)
    # A job's serialized status is reused this long per API process, so a storm of pollers costs one
    # database read per interval; writes through this process (cancel) refresh it at once.
    job_snapshot_s: float = Field(default=0.25, ge=0)
    # A job's live stream (SSE) looks for new rows this often, and ends after this long (the client
    # reconnects with Last-Event-ID and misses nothing), so no connection is held forever.
    stream_poll_s: float = Field(default=0.5, gt=0)
    stream_max_s: float = Field(default=600.0, gt=0)
    # Rate limits ("N/second|minute|hour"): per API key for reads and writes, per client address for
    # requests with a missing or wrong key. 429 with Retry-After past them.
    rate_limit_reads: str = "1200/minute"
    rate_limit_writes: str = "120/minute"
    rate_limit_failed_auth: str = "30/minute"

    # Webhooks, sent by the beat process: it looks for new events and due deliveries this often.
    webhook_poll_s: float = Field(default=1.0, gt=0)
    # Delays before each retry after a failed first attempt (the Standard Webhooks schedule: 5 s,
    # 5 min, 30 min, 2 h, 5 h, 10 h); past the last one a delivery is failed. JSON in the variable.
    webhook_retry_schedule_s: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0]
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1, le=256)
    # Loopback, RFC 1918, link-local and other non-global addresses are refused unless this is on
    # (a receiver on the same host or network: tests, on-premise setups).
    webhook_allow_private: bool = False
    # Endpoints one tenant may subscribe (every event becomes a delivery to each): 429 past it.
    max_webhooks_per_tenant: int = Field(default=50, ge=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def embedded(self) -> bool:
        """True when no database was configured: SQLite and a local broker folder."""
        return self.database_url is None

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tuneforge.db').resolve()}"

    def resolved_broker_url(self) -> str:
        """The broker URL, defaulting to kombu's filesystem transport inside ``data_dir``."""
        return self.broker_url or "filesystem://localhost/"

    @property
    def predict_queue(self) -> str:
        """Queue of prediction requests, served by workers that never train (so never blocked)."""
        return f"{self.queue}.predict"

    def resolved_result_backend(self) -> str:
        """Where prediction results travel back: Redis beside a Redis broker, else files in data_dir."""
        broker = self.resolved_broker_url()
        if broker.startswith(("redis://", "rediss://")):
            return broker
        folder = (self.data_dir / "results").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return f"file://{folder}"

    def broker_transport_options(self) -> dict[str, object]:
        """Transport options: folders for the filesystem broker, visibility timeout for Redis."""
        if self.resolved_broker_url().startswith("filesystem"):
            folder = (self.data_dir / "broker").resolve()
            for sub in ("queue", "processed", "control"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            return {
                "data_folder_in": str(folder / "queue"),
                "data_folder_out": str(folder / "queue"),
                "processed_folder": str(folder / "processed"),
                # kombu's default is ./control in whatever folder the process started from.
                "control_folder": str(folder / "control"),
                "store_processed": False,
                "polling_interval": 0.05,
            }
        # A task running past the visibility timeout is handed to a second worker (celery#5935).
        return {"visibility_timeout": self.job_hard_time_limit_s + 3600}

    def ensure_dirs(self) -> None:
        """Create the data folders this process writes to, readable by this user only (0700)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # tenants' datasets, models and the database live here
        for sub in ("datasets", "models", "tmp"):
            (self.data_dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def api_key_file(self) -> Path:
        """Where embedded mode writes the first API key for the CLI and SDK."""
        return self.data_dir / "api_key"

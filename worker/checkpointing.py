"""A claimed run's checkpoint: where it lives, and what resuming from it does to the stored epochs."""

from __future__ import annotations

from models.db import session_scope
from models.store import JobStore, TrialStore
from worker.db_retry import retry_transient
from worker.files import checkpoint_file
from worker.runtime import Runtime
from worker.training.checkpoints import Checkpoint


@retry_transient
def open_checkpoint(
    rt: Runtime, job_id: str, trial_id: str, *, number: int, execution: int = 0
) -> Checkpoint:
    """The run's checkpoint; when it holds state, later epochs are dropped and the events say so."""
    name = trial_id if execution == 0 else f"{trial_id}-{execution}"
    checkpoint = Checkpoint(checkpoint_file(rt, name), every_s=rt.settings.checkpoint_every_s)
    epoch = checkpoint.epoch()
    with session_scope(rt.sessions) as session:
        trials = TrialStore(session)
        dropped = trials.drop_epochs_after(trial_id, epoch, execution=execution)
        if epoch:
            redone = f"{dropped} epoch(s) recorded after it will be redone"
            what = f"resumed at epoch {epoch} from its checkpoint; {redone}"
            trials.note(trial_id, reason=what)
            JobStore(session).note(job_id, reason=f"trial {number}: {what}")
    return checkpoint

"""Running one task per sequence: serially, on a local dask cluster, or on a remote one.

A task is a top-level (picklable) function called with one item. It returns a value or
raises; an exception is recorded for that item (reported, then skipped) and never stops
the other items. Results come back to the calling process in completion order; the caller
writes the outputs, so a remote cluster needs no shared output folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from echo_napari.errors import EchoIOError, EchoNapariError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    """What happened to one item.

    Attributes
    ----------
    name : item name (sequence id)
    status : "done", "skipped" (output already complete) or "failed"
    value : the task's return value ("done" only)
    error : one-line reason ("failed" only)
    detail : traceback text of an unexpected (non-echo-napari) error, for ``--debug``
    """

    name: str
    status: str
    value: Any = None
    error: str = ""
    detail: str = ""


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, EchoNapariError):
        return str(exc), ""
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}", detail


def _call(func: Callable[[Any], Any], item: Any) -> tuple[str, Any, str, str]:
    """Run one task, turning any exception into a record (runs in the worker)."""
    try:
        return "done", func(item), "", ""
    except Exception as exc:  # noqa: BLE001 - one bad sequence must not stop the dataset
        message, detail = _describe(exc)
        return "failed", None, message, detail


def run_tasks(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    names: Sequence[str],
    workers: int = 1,
    scheduler: str | None = None,
    description: str = "sequences",
    on_result: Callable[[TaskOutcome], None] | None = None,
) -> list[TaskOutcome]:
    """Run ``func(item)`` for every item and collect the outcomes.

    Parameters
    ----------
    func : top-level function (must pickle for workers > 1 or a scheduler)
    items, names : the task inputs and their display names, same length
    workers : 1 = in this process; N > 1 = a ``dask.distributed.LocalCluster`` with N
        worker processes of one thread each
    scheduler : address ``tcp://host:port`` of an existing dask scheduler (overrides
        ``workers``)
    description : label of the progress bar
    on_result : called in this process as each outcome arrives (e.g. to write it)

    Returns
    -------
    list of TaskOutcome, in the order of ``items``
    """
    if len(items) != len(names):
        raise ValueError("items and names must have the same length")
    outcomes: dict[int, TaskOutcome] = {}

    def record(index: int, status: str, value: Any, error: str, detail: str) -> None:
        outcome = TaskOutcome(names[index], status, value, error, detail)
        outcomes[index] = outcome
        if status == "failed":
            logger.warning("%s: failed: %s", names[index], error)
        if on_result is not None:
            on_result(outcome)

    bar = tqdm(total=len(items), desc=description, unit="seq", leave=False, disable=None)
    try:
        if scheduler is None and workers <= 1:
            for index, item in enumerate(items):
                record(index, *_call(func, item))
                bar.update()
        else:
            with _dask_client(workers, scheduler) as client:
                from distributed import as_completed

                futures = client.map(_call, [func] * len(items), items, pure=False)
                index_of = {f.key: i for i, f in enumerate(futures)}
                for future in as_completed(futures):
                    index = index_of[future.key]
                    if future.status == "error":
                        message, detail = _describe(future.exception())
                        record(index, "failed", None, message, detail)
                    else:
                        record(index, *future.result())
                    future.release()
                    bar.update()
    finally:
        bar.close()
    return [outcomes[i] for i in range(len(items))]


#: dask settings for the LocalCluster behind ``--workers N``: one task per sequence, all of
#: similar cost, on as many processes as cores, so the scheduler (in this process) and the
#: workers must not spend the cores on bookkeeping: no statistical profiler sampling every
#: worker 100 times a second, no work stealing between workers that are all busy.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.scheduler.work-stealing": False,
}


@contextlib.contextmanager
def _dask_client(workers: int, scheduler: str | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if not logging.getLogger().isEnabledFor(logging.INFO):
        # distributed sets its loggers to INFO when imported; the scheduler of a
        # LocalCluster runs in this process and would log every worker start and stop.
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("distributed"):
                logging.getLogger(name).setLevel(logging.ERROR)

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise EchoNapariError(
                f"cannot reach the dask scheduler at {scheduler}: {exc}; start one with "
                "`dask scheduler` and `dask worker <address>`, or use --workers N instead"
            ) from exc
        with client:
            yield client
        return
    import dask

    # One thread per process: our tasks are numpy/torch-bound and hold the GIL in places.
    with (
        dask.config.set(LOCAL_CLUSTER_CONFIG),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


# -- atomic, resumable outputs ------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    The move is :func:`os.replace` on the same file system, so ``path`` either does not
    exist or is complete: a later run can skip it (resumable).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EchoIOError(target, f"cannot create folder {target.parent}: {exc}") from exc
    # A unique hidden name in the same folder (same file system, so os.replace is atomic);
    # the writer creates it, so it gets the user's normal permissions.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise EchoIOError(target, f"cannot write it: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv_atomic(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV atomically; return the path."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def summary_table(outcomes: Sequence[TaskOutcome], columns: Sequence[str] = ()) -> str:
    """A plain-text table: one line per sequence (status, chosen values), then totals.

    Parameters
    ----------
    outcomes : from :func:`run_tasks`
    columns : keys of dict-valued results to show (numbers with 3 significant digits)
    """
    header = ["sequence", "status", *columns]
    rows = []
    for o in outcomes:
        values = o.value if isinstance(o.value, dict) else {}
        cells = [_format(values.get(c, "")) for c in columns]
        status = o.status if o.status != "failed" else f"FAILED: {o.error}"
        rows.append([o.name, status, *cells])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    widths[1] = min(widths[1], 60)

    def line(cells: list[str]) -> str:
        return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=False))

    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    total = ", ".join(f"{n} {s}" for s, n in counts.items())
    return "\n".join(
        [line(header), line(["-" * w for w in widths]), *map(line, rows), f"total: {total}"]
    )


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)

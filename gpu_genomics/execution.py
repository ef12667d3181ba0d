"""Where a job's tasks run: in this process (the default) or on a Dask cluster.

Every job takes ``client=None``: without one it runs in this process exactly as it always has;
with a :class:`distributed.Client` it cuts its work into tasks (a BED file, a chromosome, a range
of output rows, a block of records), runs them on the cluster's workers and writes the output on
the client (HDF5: one writer, blocks in order) or from the workers (Zarr: each task writes its
own whole chunks), renaming the finished output into place once, on the client. The output is
the same array for array whatever the cluster.

:func:`cluster` makes the client the command line's ``--workers N`` / ``--scheduler ADDRESS``
ask for: a :class:`distributed.LocalCluster` of ``N`` single-threaded worker processes (a
``dask_cuda.LocalCUDACluster``, one worker per GPU with its device pinned, when a GPU is usable
and dask-cuda is installed), or a connection to an existing scheduler (``$DASK_SCHEDULER_ADDRESS``
when no option is given). Dask and distributed are the ``[dask]`` extra, imported only here and
only when a cluster is asked for.

A lost worker's tasks are run again by Dask (their inputs are recomputed from the task graph),
so a job survives it with the same output; a task's error (bad input) is raised on the client as
the same one-line error as in-process, the first one in task order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .device import gpu_status, requested_device
from .errors import InputError, positive_int

log = logging.getLogger("gpu_genomics")

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


def require_distributed() -> Any:
    """Return the ``distributed`` module.

    Raises:
        InputError: Dask's distributed scheduler is not installed.
    """
    try:
        import distributed
    except ImportError as exc:
        raise InputError(
            f"running on a cluster needs dask and distributed ({exc}); "
            "pip install 'gpu-genomics[dask]'"
        ) from None
    return distributed


@contextlib.contextmanager
def cluster(
    *, workers: int | None = None, scheduler: str | None = None, device: str | None = None
) -> Iterator[Any]:
    """Yield the Dask client that ``workers`` or ``scheduler`` ask for, or None (in-process).

    Args:
        workers: start a local cluster of this many worker processes, one thread each (with
            a usable GPU and dask-cuda installed, one worker per GPU, at most as many workers
            as there are GPUs).
        scheduler: join the cluster of this scheduler address (``tcp://host:8786``); default
            ``$DASK_SCHEDULER_ADDRESS`` when ``workers`` is not given.
        device: the job's ``device``; ``"gpu"``/``"auto"`` with a usable GPU and dask-cuda
            installed start a ``LocalCUDACluster``.

    Yields:
        A :class:`distributed.Client`, closed (with any cluster it started) when the block ends;
        None when neither is given, which every job takes as "run in this process".

    Raises:
        InputError: both are given, ``workers`` is not a positive integer, or distributed is
            not installed.
    """
    if workers is not None and scheduler is not None:
        raise InputError(
            "give `workers` (a local cluster) or `scheduler` (a running one), not both"
        )
    if workers is None and scheduler is None:
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    if workers is None and scheduler is None:
        yield None
        return
    distributed = require_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except OSError as exc:
            raise InputError(f"scheduler={scheduler!r}: cannot connect ({exc})") from None
        with client:
            log.info("joined the Dask cluster at %s (%d workers)", scheduler, _n_workers(client))
            yield client
        return
    n_workers = positive_int("workers", workers)
    with _local_cluster(distributed, n_workers, device) as local, distributed.Client(local) as c:
        log.info("started a local Dask cluster: %d workers", _n_workers(c))
        yield c


@contextlib.contextmanager
def _local_cluster(distributed: Any, n_workers: int, device: str | None) -> Iterator[Any]:
    # task errors come back to the client as one line; the workers do not print them again. No
    # dashboard, and the scheduler's HTTP routes on a free port (never "8787 is in use")
    quiet = {
        "dashboard_address": ":0",
        "scheduler_kwargs": {"dashboard": False},
        "silence_logs": logging.CRITICAL,
    }
    if requested_device(device) != "cpu" and gpu_status()[0]:
        try:
            import dask_cuda
        except ImportError:
            log.info("dask-cuda is not installed: the local cluster's workers share the GPU")
        else:
            from dask_cuda.utils import get_n_gpus

            n_gpus = get_n_gpus()
            if n_workers > n_gpus:
                log.info("%d workers asked for, %d GPUs: starting %d", n_workers, n_gpus, n_gpus)
            with dask_cuda.LocalCUDACluster(n_workers=min(n_workers, n_gpus),
                                            threads_per_worker=1, **quiet) as local:  # fmt: skip
                yield local
            return
    # each worker runs the numba kernels on its share of the cores
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    with distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        env={"NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads},
        **quiet,
    ) as local:
        yield local


def _n_workers(client: Any) -> int:
    return len(client.scheduler_info().get("workers", {}))


def ordered_results(
    futures: Iterable[Any], *, progress: Callable[[Any], None] | None = None
) -> Iterator[Any]:
    """Yield the results of ``futures`` in their order, as each becomes available.

    The first task that failed, in this order, raises its error here (the tasks before it
    succeeded); ``progress`` is called with each result.
    """
    for future in futures:
        result = future.result()
        if progress is not None:
            progress(result)
        yield result


def windowed(submit: Callable[[Any], Any], items: Sequence[Any], *, window: int) -> Iterator[Any]:
    """Submit ``submit(item)`` for each item, at most ``window`` ahead of the one yielded.

    Yields the futures in order; the caller takes each result before the next is submitted
    beyond the window, so results wait on the workers only ``window`` at a time (the HDF5
    writer's memory bound).
    """
    pending: list[Any] = []
    items = list(items)
    for index in range(min(window, len(items))):
        pending.append(submit(items[index]))
    for index in range(len(items)):
        future = pending[index]
        if index + window < len(items):
            pending.append(submit(items[index + window]))
        yield future
        pending[index] = None  # the result, once taken, is not held here


def task_window(client: Any) -> int:
    """Tasks a job keeps submitted ahead of the one whose result it takes: twice the workers."""
    return 2 * worker_count(client)


def whole_chunks(rows: int, chunk_rows: int) -> int:
    """``rows`` rounded down to whole chunks of ``chunk_rows``, at least one chunk.

    A task that writes rows ``[first, first + whole_chunks(...))`` of a Zarr array writes
    whole chunks only, so no two tasks write one chunk.
    """
    return max(chunk_rows, rows - rows % chunk_rows)


def worker_count(client: Any) -> int:
    """How many workers the client's cluster has now (at least 1)."""
    return max(1, _n_workers(client))


def map_in_order(
    client: Any, function: Callable[..., Any], arguments: Sequence[tuple], *, name: str
) -> Iterator[Any]:
    """Yield ``function(*args)`` for each tuple of ``arguments``, in their order.

    In this process (``client=None``) one call after another; on a cluster each call is a task,
    submitted at most :func:`task_window` ahead of the result taken, so that results wait on
    the workers only a window at a time. Task keys are ``{name}-{index}-{a token}``. When a
    task fails (or the caller stops taking results) the tasks not yet taken are cancelled.
    """
    if client is None:
        for args in arguments:
            yield function(*args)
        return
    import uuid
    from collections import deque

    token = uuid.uuid4().hex[:12]
    indexed = list(enumerate(arguments))
    outstanding: deque = deque()  # submitted, result not yet taken

    def submit(item: tuple[int, tuple]) -> Any:
        index, args = item
        future = client.submit(function, *args, key=f"{name}-{index}-{token}", pure=False)
        outstanding.append(future)
        return future

    try:
        for result in ordered_results(windowed(submit, indexed, window=task_window(client))):
            outstanding.popleft()
            yield result
    except BaseException:  # a task failed, or the caller stopped: the rest need not run
        with contextlib.suppress(Exception):
            client.cancel(list(outstanding))
        raise


def prefetched(
    items: Iterable[Any], depth: int = 1, *, name: str = "gpu-genomics-read"
) -> Iterator[Any]:
    """``items`` produced by a background thread, at most ``depth`` ahead of the consumer.

    Reading (or decompressing) the next item overlaps the consumer's work on this one: zlib,
    ISA-L and h5py's reads let other threads run.

    An exception in the thread is raised in the consumer at the point it happened; a consumer
    that stops early (``break``, ``close()``, garbage collection) stops the thread after the
    item it is making.
    """
    items = iter(items)
    done = object()
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.01)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            while not stop.is_set():
                try:
                    item = next(items)
                except StopIteration:
                    put((done, None))
                    return
                if not put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put((None, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                while True:  # unblock a put() waiting for a slot
                    slots.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.005)


class WriteBehind:
    """Calls run in order by one background thread, at most ``depth`` waiting (write-behind).

    A job's writes (compressing and storing a chunk: zstd, h5py and Zarr let other threads
    run) overlap its parsing of the next rows. :meth:`submit` waits for the oldest call when
    ``depth`` are waiting, and raises the first failed call's error there or in :meth:`drain`.
    Leaving the ``with`` block drains the calls; leaving it by an error (or an interrupt)
    cancels those not started and waits for the one running, so nothing is written after
    the output is removed.

    Memory: the arguments of at most ``depth`` calls (and of the one running).
    """

    def __init__(self, depth: int = 2, *, name: str = "gpu-genomics-write") -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list[Any] = []

    def submit(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``call(*args, **kwargs)`` after the calls submitted before it."""
        while len(self._pending) >= self.depth:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(call, *args, **kwargs))

    def drain(self) -> None:
        """Wait for every call submitted; raise the first error."""
        while self._pending:
            self._pending.pop(0).result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if exc_type is None:
                self.drain()
        finally:
            for future in self._pending:
                future.cancel()
            self._pending = []
            self._pool.shutdown(wait=True)

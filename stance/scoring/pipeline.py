"""The overlapped local engine: a worker process prepares and finishes batches while this one predicts.

``stance score`` spends about half its time around the model: segmenting articles and building
contexts before it (:meth:`~stance.scoring.kernel.Kernel.prepare`), summarising and building rows
after it (:meth:`~stance.scoring.kernel.Kernel.finish`, :meth:`~stance.scoring.kernel.Kernel.batch_rows`).
Those parts need no model, so a worker process can do them while this process predicts, and two
cores work instead of one. The kernel stays the one place that segments, predicts and
summarises, and this process alone reads the input and writes the files, in input order, so the
bytes are those of the serial path.

Work is shared, not handed over: a stage of a batch goes to the worker only when the worker has
fewer than :data:`WORKER_JOBS` jobs waiting; otherwise, and while the worker is still starting
(a fresh interpreter, about 0.2-0.4 s), this process does it itself. So a busy or slow worker
costs little, and if the worker fails, its jobs are done here and the run goes on. Memory is flat
in the input size: at most :data:`WINDOW` batches are between reading and writing.

The worker is started as ``python -m stance.scoring.pipeline`` (never a fork of this process,
which may hold torch threads, and never a re-import of the caller's ``__main__``). It ignores
SIGINT (Ctrl-C is this process's to handle), holds no file, and is killed and waited for when
the run ends, fails or is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from stance.scoring.kernel import Kernel, Predicted, Prepared, ScoredArticle
from stance.scoring.readers import Article
from stance.scoring.writers import RowWriter

WINDOW = 4  # batches between reading and writing
WORKER_JOBS = 2  # jobs the worker may have waiting before this process does the next one itself
POLL_SECONDS = 0.5  # how often a wait checks that the worker is still alive

Written = Callable[[int, int, list[dict[str, Any]]], None]  # articles, sentences, error article rows
Rows = tuple[dict[str, list[Any]], list[dict[str, Any]]]  # a batch's sentence columns and article rows


def batches(articles: Iterable[Article], size: int) -> Iterator[list[Article]]:
    """``articles`` in lists of ``size`` (the last may be shorter)."""
    batch: list[Article] = []
    for article in articles:
        batch.append(article)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class BatchSink:
    """The two output files of a run; writes a batch's rows (sentence columns and article rows)."""

    def __init__(self, kernel: Kernel, sentences_path: Path, articles_path: Path, fmt: str, excel: bool) -> None:
        self.sentences = RowWriter(sentences_path, kernel.sentence_columns, fmt, excel)
        try:
            self.articles = RowWriter(articles_path, kernel.article_columns, fmt, excel)
        except BaseException:
            self.sentences.close()
            raise

    def write(self, rows: Rows) -> tuple[int, int, list[dict[str, Any]]]:
        """Write one batch; returns its article count, sentence count and error article rows."""
        columns, article_rows = rows
        self.sentences.write_columns(columns)
        self.articles.write_rows(article_rows)
        return len(article_rows), len(columns["text"]), [row for row in article_rows if row["error"] is not None]

    def close(self) -> None:
        try:
            self.sentences.close()
        finally:
            self.articles.close()


def finished_rows(kernel: Kernel, prepared: Prepared, predicted: Predicted) -> Rows:
    """A predicted batch summarised and turned into rows (what the worker's ``finish`` job returns)."""
    scored: list[ScoredArticle] = kernel.finish(prepared, predicted)
    return kernel.batch_rows(scored)


class WorkerError(RuntimeError):
    """The worker process failed or ended without saying why."""


class Worker:
    """This process's handle on the worker: start it, send jobs, collect replies, stop it.

    Replies (``("prepared" | "finished", job id, result)``) are handed to ``on_reply``.
    """

    def __init__(self, kernel: Kernel, on_reply: Callable[[int, Any], None]) -> None:
        self.on_reply = on_reply
        self.ready = False
        self.waiting = 0  # jobs sent and not answered
        mine, theirs = Pipe(duplex=True)
        self.connection: Connection = mine
        # the child imports this copy of stance, whatever the parent's sys.path was built from
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stance.scoring.pipeline", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()  # the child has its own copy: this end reads EOF once the child is gone
        self.connection.send(("open", {"name": kernel.name, "sha256": kernel.sha256, "batch_size": kernel.batch_size,
                                       "keep_fields": kernel.keep_fields}))

    def free(self) -> bool:
        """Whether the worker has started and has room for another job (reads arrived replies)."""
        self.receive(block=False)
        return self.ready and self.waiting < WORKER_JOBS

    def send(self, kind: str, job: int, *payload: Any) -> None:
        self.connection.send((kind, job, *payload))
        self.waiting += 1

    def receive(self, block: bool) -> None:
        """Handle every reply that has arrived; with ``block``, wait for at least one.

        Raises :class:`WorkerError` when the worker reports a failure or is gone.
        """
        while True:
            if not self.connection.poll(0):
                if not block:
                    return
                while not self.connection.poll(POLL_SECONDS):
                    if self.process.poll() is not None and not self.connection.poll(0):
                        raise WorkerError(f"the scoring worker ended (exit code {self.process.returncode})")
            try:
                kind, *body = self.connection.recv()
            except (EOFError, OSError) as problem:
                raise WorkerError("the scoring worker ended") from problem
            if kind == "ready":
                self.ready = True
            elif kind == "failed":
                raise WorkerError(f"the scoring worker failed: {body[0]}")
            else:
                self.waiting -= 1
                self.on_reply(body[0], body[1])
            block = False

    def stop(self) -> None:
        """End the worker and wait for it; idempotent. It holds no file and no result that is not
        also here, so it is killed rather than asked: a clean exit would cost its interpreter's
        teardown (about 0.1 s) for nothing."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.connection.close()


@dataclass
class _Slot:
    """One batch between reading and writing."""

    articles: list[Article]
    prepared: Prepared | None = None
    predicted: Predicted | None = None
    rows: Rows | None = None
    at_worker: bool = False  # a job of this batch is with the worker


def score_overlapped(articles: Iterable[Article], kernel: Kernel, sink: BatchSink, articles_per_batch: int,
                     on_written: Written) -> None:
    """Score ``articles`` into ``sink``, sharing preparation and finishing with a worker process.

    The rows are those of the serial path, written in input order; ``on_written(articles,
    sentences, error_rows)`` is called after each batch is written. ``kernel.explain`` must be 0
    (the worker holds no model: ``ValueError`` otherwise). An error of the reader or the model
    propagates once the worker has been stopped; a failure of the worker itself is not an error:
    this process does the rest of the work.
    """
    if kernel.explain:
        raise ValueError("the overlapped engine cannot explain (its worker holds no model); use the serial path")
    window: deque[_Slot] = deque()
    jobs: dict[int, _Slot] = {}

    def on_reply(job: int, result: Any) -> None:
        slot = jobs.pop(job)
        slot.at_worker = False
        if isinstance(result, Prepared):
            slot.prepared = result
        else:
            slot.rows = result

    worker: Worker | None = Worker(kernel, on_reply)

    def lose_worker() -> None:
        # its unanswered jobs are done here: nothing they held is lost (each slot keeps its inputs)
        nonlocal worker
        if worker is not None:
            worker.stop()
            worker = None
        for slot in jobs.values():
            slot.at_worker = False
        jobs.clear()

    def worker_free() -> bool:
        try:
            return worker is not None and worker.free()
        except WorkerError:
            lose_worker()
            return False

    def wait_for_worker() -> None:
        if worker is None:  # pragma: no cover - no job is with a lost worker
            return
        try:
            worker.receive(block=True)
        except WorkerError:
            lose_worker()

    source = batches(articles, articles_per_batch)
    next_job = 0
    exhausted = False
    failure: Exception | None = None  # of the input: raised once the batches read before it are written
    try:
        while True:
            while not exhausted and len(window) < WINDOW:
                try:
                    batch = next(source, None)
                except Exception as problem:
                    failure, batch = problem, None
                if batch is None:
                    exhausted = True
                    break
                window.append(_Slot(batch))
            # the worker prepares from the back of the window while this process works from the
            # front, so neither waits for the other unless the worker has fallen behind
            ahead = next((s for s in window if s.predicted is None), None)
            for waiting in reversed(window):
                if waiting.prepared is None and not waiting.at_worker and waiting is not ahead and worker_free():
                    assert worker is not None
                    jobs[next_job] = waiting
                    waiting.at_worker = True
                    worker.send("prepare", next_job, waiting.articles)
                    next_job += 1
            for lost in window:  # a finishing job the worker did not answer: done here
                if not lost.at_worker and lost.predicted is not None and lost.rows is None:
                    assert lost.prepared is not None
                    lost.rows = finished_rows(kernel, lost.prepared, lost.predicted)
            while window and window[0].rows is not None:
                on_written(*sink.write(window.popleft().rows))  # type: ignore[arg-type]
            if not window:  # all written: the end, or read on (every batch read may be done already)
                if exhausted:
                    break
                continue
            slot = next((s for s in window if s.predicted is None), None)
            if slot is None or slot.at_worker:  # what comes next is with the worker
                wait_for_worker()
                continue
            if slot.prepared is None:
                slot.prepared = kernel.prepare(slot.articles)
            slot.predicted = kernel.predict(slot.prepared)
            slot.prepared.contexts = []  # finishing without explanations needs no contexts: less to send
            if worker_free():
                assert worker is not None
                jobs[next_job] = slot
                slot.at_worker = True
                worker.send("finish", next_job, slot.prepared, slot.predicted)
                next_job += 1
            else:
                slot.rows = finished_rows(kernel, slot.prepared, slot.predicted)
    finally:
        if worker is not None:
            worker.stop()
    if failure is not None:
        raise failure


# ------------------------------------------------------------------ the worker process


def _serve(connection: Connection) -> None:
    """The worker's loop: jobs in order until ``close``; a failure is reported, then it exits."""
    requests: SimpleQueue[Any] = SimpleQueue()

    def read() -> None:
        # always draining the pipe, so that the parent's sends never wait on this process's sends
        # (which wait on the parent reading): no deadlock with both pipes full
        try:
            while True:
                requests.put(connection.recv())
        except (EOFError, OSError):
            requests.put(("close", 0))

    threading.Thread(target=read, daemon=True).start()
    kernel: Kernel | None = None
    try:
        while True:
            kind, job, *body = requests.get()
            if kind == "open":
                config = job
                kernel = Kernel(None, config["name"], config["sha256"], config["batch_size"], config["keep_fields"])
                connection.send(("ready",))
            elif kind == "prepare" and kernel is not None:
                connection.send(("prepared", job, kernel.prepare(body[0])))
            elif kind == "finish" and kernel is not None:
                connection.send(("finished", job, finished_rows(kernel, *body)))
            elif kind == "close":
                return
    except Exception as problem:  # reported as text: the parent does the work itself
        connection.send(("failed", f"{type(problem).__name__}: {problem}"))
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the worker process: ``python -m stance.scoring.pipeline <connection fd>``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process only: the parent decides when to stop
    connection = Connection(int((argv if argv is not None else sys.argv[1:])[0]))
    try:
        _serve(connection)
    except (BrokenPipeError, ConnectionResetError):  # the parent is gone: nothing to report to
        pass
    finally:
        connection.close()


if __name__ == "__main__":
    main()

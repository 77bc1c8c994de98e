"""The overlapped local engine: a worker process prepares and writes while this process predicts.

``stance score`` spends about half its time around the model: segmenting articles and building
contexts before it, summarising and writing rows after it. Those parts need no model, so a
worker process does them while this process predicts, and the two cores both work:

* this process reads articles and sends batches to the worker, which segments them
  (:meth:`~stance.scoring.kernel.Kernel.prepare`) and sends them back;
* this process predicts a prepared batch (:meth:`~stance.scoring.kernel.Kernel.predict`) and
  sends the probabilities back; the worker summarises them
  (:meth:`~stance.scoring.kernel.Kernel.finish`), builds the rows a column at a time and writes
  them (:class:`BatchSink`), in input order.

So the kernel stays the one place that segments, predicts and summarises, and the rows are those
of the serial path. Memory is flat in the input size: at most :data:`DEPTH` batches wait for
preparation and :data:`DEPTH` for writing. The worker starts in a fresh interpreter
(``python -m stance.scoring.pipeline``, never a fork of this process, which may hold torch
threads); while it starts (about 0.1-0.3 s), this process prepares the first batches itself.
The worker ignores SIGINT: on Ctrl-C, or on any error here, it is told to write what it has,
close the files and exit, and is killed if it has not done so within :data:`STOP_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from stance.scoring.kernel import Kernel, Predicted, Prepared, ScoredArticle
from stance.scoring.readers import Article
from stance.scoring.writers import RowWriter

DEPTH = 2  # batches waiting for the worker's preparation, and waiting for it to write
STOP_SECONDS = 30.0  # how long a stopping worker may take to write what it has and close
POLL_SECONDS = 0.5  # how often a wait checks that the worker is still alive

Written = Callable[[int, int, list[dict[str, Any]]], None]  # articles, sentences, error article rows


class BatchSink:
    """The two output files of a run; :meth:`write` turns a scored batch into rows and writes them.

    Used by the serial path and by the worker alike, so both write the same bytes.
    """

    def __init__(self, kernel: Kernel, sentences_path: Path, articles_path: Path, fmt: str, excel: bool) -> None:
        self.kernel = kernel
        self.sentences = RowWriter(sentences_path, kernel.sentence_columns, fmt, excel)
        try:
            self.articles = RowWriter(articles_path, kernel.article_columns, fmt, excel)
        except BaseException:
            self.sentences.close()
            raise

    def write(self, batch: list[ScoredArticle]) -> tuple[int, int, list[dict[str, Any]]]:
        """Write ``batch``'s rows; returns its article count, sentence count and error article rows."""
        columns, article_rows = self.kernel.batch_rows(batch)
        self.sentences.write_columns(columns)
        self.articles.write_rows(article_rows)
        return len(article_rows), len(columns["text"]), [row for row in article_rows if row["error"] is not None]

    def close(self) -> None:
        try:
            self.sentences.close()
        finally:
            self.articles.close()


class WorkerError(RuntimeError):
    """The worker process ended without saying why (it crashed or was killed)."""


class Worker:
    """The parent's handle on one worker process: start, send, receive, stop.

    Replies come in the order of the requests; ``on_written`` is called for each written batch.
    """

    def __init__(self, kernel: Kernel, paths: tuple[Path, Path], fmt: str, excel: bool, on_written: Written) -> None:
        from stance.scoring import writers

        self.on_written = on_written
        self.ready = self.closed = False
        self.prepared: deque[Prepared] = deque()
        self.unwritten = 0  # finish requests not yet answered
        mine, theirs = Pipe(duplex=True)
        self.connection: Connection = mine
        # the child finds this copy of stance whatever the parent's sys.path was built from
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stance.scoring.pipeline", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            theirs.close()  # the child holds its own copy: its end closing means the child is gone
        config = {"name": kernel.name, "sha256": kernel.sha256, "batch_size": kernel.batch_size,
                  "keep_fields": kernel.keep_fields, "paths": [str(p) for p in paths], "fmt": fmt, "excel": excel,
                  "rows_per_group": writers.PARQUET_ROWS_PER_GROUP}
        self.connection.send(("open", config))

    # -- requests

    def prepare(self, batch: list[Article]) -> None:
        self.connection.send(("prepare", batch))

    def finish(self, prepared: Prepared, predicted: Predicted) -> None:
        """Send a predicted batch to be summarised and written; waits while :data:`DEPTH` are unwritten."""
        while not self.ready:
            self._receive()
        while self.unwritten >= DEPTH:
            self._receive()
        self.connection.send(("finish", prepared, predicted))
        self.unwritten += 1

    def next_prepared(self) -> Prepared:
        """The oldest prepared batch (waits for it)."""
        while not self.prepared:
            self._receive()
        return self.prepared.popleft()

    def poll_ready(self) -> bool:
        """Whether the worker has started (reads any reply that has arrived, without waiting)."""
        while not self.ready and self.connection.poll(0):
            self._receive()
        return self.ready

    def close(self) -> None:
        """Ask the worker to write everything sent, close the files and exit; wait for it."""
        self.connection.send(("close",))
        while not self.closed:
            self._receive()
        self.process.wait(STOP_SECONDS)

    def stop(self) -> None:
        """End the worker whatever state it is in (after :meth:`close`, or on an error or Ctrl-C)."""
        if self.process.poll() is None and not self.closed:
            deadline = time.monotonic() + STOP_SECONDS
            try:
                self.connection.send(("close",))
                # read (and drop) its replies meanwhile, so that it never waits on a full pipe
                while self.process.poll() is None and time.monotonic() < deadline:
                    if self.connection.poll(0.05):
                        self.connection.recv()
            except (OSError, EOFError):
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.connection.close()

    # -- replies

    def _receive(self) -> None:
        while not self.connection.poll(POLL_SECONDS):
            if self.process.poll() is not None and not self.connection.poll(0):
                raise WorkerError(f"the scoring worker ended unexpectedly (exit code {self.process.returncode})")
        try:
            kind, *body = self.connection.recv()
        except EOFError as problem:
            self.process.wait(STOP_SECONDS)
            raise WorkerError(f"the scoring worker ended unexpectedly (exit code {self.process.returncode})") \
                from problem
        if kind == "ready":
            self.ready = True
        elif kind == "prepared":
            self.prepared.append(body[0])
        elif kind == "written":
            self.unwritten -= 1
            self.on_written(*body)
        elif kind == "closed":
            self.closed = True
        elif kind == "failed":
            self.closed = True  # it has closed its files and is exiting
            raise body[0]
        else:  # pragma: no cover - both ends are this module
            raise WorkerError(f"unknown reply {kind!r} from the scoring worker")


def batches(articles: Iterable[Article], size: int) -> Iterable[list[Article]]:
    """``articles`` in lists of ``size`` (the last may be shorter)."""
    batch: list[Article] = []
    for article in articles:
        batch.append(article)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_overlapped(articles: Iterable[Article], kernel: Kernel, paths: tuple[Path, Path], fmt: str, excel: bool,
                     articles_per_batch: int, on_written: Written) -> None:
    """Score ``articles`` into ``paths`` with a worker process (see the module docstring).

    The rows are those of the serial path. ``on_written(articles, sentences, error_rows)`` is
    called here for every batch the worker has written. ``kernel.explain`` must be 0 (the
    worker has no model). Errors of the reader or the model propagate after the worker has
    written what it had and exited; :class:`WorkerError` when the worker itself dies.
    """
    if kernel.explain:
        raise ValueError("the overlapped engine cannot explain (the worker holds no model); use the serial path")
    worker = Worker(kernel, paths, fmt, excel, on_written)
    try:
        # each entry: a batch prepared here (while the worker starts) or None (prepared by the worker)
        window: deque[Prepared | None] = deque()
        source = iter(batches(articles, articles_per_batch))
        exhausted = False
        while True:
            while not exhausted and len(window) < DEPTH + 1:
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                elif worker.poll_ready():
                    worker.prepare(batch)
                    window.append(None)
                else:
                    window.append(kernel.prepare(batch))
            if not window:
                break
            entry = window.popleft()
            prepared = worker.next_prepared() if entry is None else entry
            predicted = kernel.predict(prepared)
            prepared.contexts = []  # finishing without explanations needs no contexts: less to send
            worker.finish(prepared, predicted)
        worker.close()
    finally:
        worker.stop()


# ------------------------------------------------------------------ the worker process


def _serve(connection: Connection) -> None:
    """The worker's loop: requests in order, until ``close``; any failure is sent back, then it exits."""
    from stance.scoring import writers

    requests: SimpleQueue[Any] = SimpleQueue()

    def read() -> None:
        # always draining the socket, so that the parent's sends never wait on this process's
        # sends (which wait on the parent reading): no deadlock with both pipes full
        try:
            while True:
                requests.put(connection.recv())
        except (EOFError, OSError):
            requests.put(("close",))

    threading.Thread(target=read, daemon=True).start()
    sink: BatchSink | None = None
    kernel: Kernel | None = None
    try:
        while True:
            kind, *body = requests.get()
            if kind == "open":
                config = body[0]
                writers.PARQUET_ROWS_PER_GROUP = config["rows_per_group"]  # this process's own copy
                kernel = Kernel(None, config["name"], config["sha256"], config["batch_size"], config["keep_fields"])
                sentences_path, articles_path = (Path(p) for p in config["paths"])
                sink = BatchSink(kernel, sentences_path, articles_path, config["fmt"], config["excel"])
                connection.send(("ready",))
            elif kind == "prepare":
                assert kernel is not None
                connection.send(("prepared", kernel.prepare(body[0])))
            elif kind == "finish":
                assert kernel is not None and sink is not None
                connection.send(("written", *sink.write(kernel.finish(*body))))
            elif kind == "close":
                if sink is not None:
                    sink.close()
                    sink = None
                connection.send(("closed",))
                return
    except BaseException as problem:
        if sink is not None:
            with contextlib.suppress(Exception):  # the failure being reported matters more
                sink.close()
        try:
            connection.send(("failed", problem))
        except Exception:  # an exception that does not pickle: its text
            connection.send(("failed", RuntimeError(f"scoring worker: {type(problem).__name__}: {problem}")))
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the worker process: ``python -m stance.scoring.pipeline <connection fd>``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # this process only: the parent decides when to stop
    fd = int((argv if argv is not None else sys.argv[1:])[0])
    connection = Connection(fd)
    try:
        _serve(connection)
    finally:
        connection.close()


if __name__ == "__main__":
    main()

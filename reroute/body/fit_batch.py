"""Merging concurrent body fits into one batch (group commit).

The fit's cost is per optimiser step, not per photo: on a 2-core CPU one photo
takes ~0.32 s and two in one batch ~0.36 s (:func:`reroute.body.fit.fit_bodies`).
An app serving several requests at once used to run their fits side by side in
threads, where each step's Python work waits for the GIL, so two concurrent
fits took longer than the same fits one after the other. A :class:`FitBatcher`
queues every caller's photos instead: the first caller to find no batch
running fits everything queued with the same :class:`~reroute.body.fit.FitConfig`
as one batch, and the other callers wait for their share of its results.

Each photo keeps its own learning-rate schedule and convergence stop in the
batch, so a photo's fitted body does not depend on what else was queued with it
(up to float summation order).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # reroute.body.fit uses this module: types only, no import cycle
    from reroute.body.detect import PersonObservation
    from reroute.body.fit import FitConfig
    from reroute.body.posed import FittedBody

__all__ = ["FitBatcher"]

#: fits a list of observations as one batch: ``fit(observations, config, names)``
FitFunction = Callable[[list["PersonObservation"], "FitConfig", list[str]], list["FittedBody"]]


@dataclass(eq=False)
class _Job:
    """One caller's request: its photos, config and names, and then its outcome."""

    observations: list[PersonObservation]
    config: FitConfig
    names: list[str]
    bodies: list[FittedBody] | None = None
    error: BaseException | None = None
    done: bool = False


class FitBatcher:
    """Fits the photos of concurrent callers as one batch.

    Args:
        fit: the batch fit, ``fit(observations, config, names) -> bodies`` (one
            :class:`~reroute.body.posed.FittedBody` per observation, in order;
            raises :class:`~reroute.errors.FitError` naming the photo).
        max_photos: at most this many photos in one batch (the first queued
            request always goes, however many photos it has).

    Calling the batcher (``batcher(observations, config, names)``) blocks until
    the caller's own photos are fitted and returns their bodies, or raises the
    error their fit raised. When a merged batch fails, each request in it is fitted
    again on its own, so an error only reaches the request whose photo caused it.
    Thread-safe; :attr:`batches` counts the batches run and :attr:`largest` the
    most photos fitted in one.
    """

    def __init__(self, fit: FitFunction, max_photos: int = 16):
        if max_photos < 1:
            raise ValueError(f"max_photos must be >= 1, got {max_photos}")
        self._fit = fit
        self.max_photos = max_photos
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._running = False
        self.batches = 0
        self.largest = 0

    @property
    def pending(self) -> int:
        """Requests waiting for a batch (not counting the one running)."""
        with self._cond:
            return len(self._queue)

    def __call__(self, observations: list[PersonObservation], config: FitConfig,
                 names: list[str]) -> list[FittedBody]:  # fmt: skip
        job = _Job(list(observations), config, list(names))
        with self._cond:
            self._queue.append(job)
        while True:
            with self._cond:
                while self._running and not job.done:
                    self._cond.wait()
                if job.done:
                    break
                self._running = True  # this caller leads the next batch
                batch = self._take()
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.bodies is not None
        return job.bodies

    def _take(self) -> list[_Job]:
        """The queued requests that share the first one's config, up to ``max_photos``
        photos (the first always); removed from the queue. Call with the lock held."""
        first = self._queue[0]
        batch, n = [], 0
        for job in list(self._queue):
            if job.config != first.config:
                continue
            if batch and n + len(job.observations) > self.max_photos:
                break
            batch.append(job)
            n += len(job.observations)
            self._queue.remove(job)
        self.batches += 1
        self.largest = max(self.largest, n)
        return batch

    def _run(self, batch: list[_Job]) -> None:
        """Fit ``batch`` as one; on failure fit each request alone. Marks every job done."""
        try:
            if len(batch) == 1:
                self._fit_alone(batch[0])
                return
            try:
                bodies = self._fit([o for j in batch for o in j.observations], batch[0].config,
                                   [n for j in batch for n in j.names])  # fmt: skip
            except Exception:  # noqa: BLE001 - find whose photo failed: each request alone
                for job in batch:
                    self._fit_alone(job)
                return
            i = 0
            for job in batch:
                job.bodies = bodies[i:i + len(job.observations)]
                i += len(job.observations)
        finally:
            for job in batch:  # an interrupted batch must not leave its callers waiting
                if job.bodies is None and job.error is None:
                    job.error = RuntimeError("the body fit was interrupted")
                job.done = True

    def _fit_alone(self, job: _Job) -> None:
        try:
            job.bodies = self._fit(job.observations, job.config, job.names)
        except Exception as exc:  # noqa: BLE001 - handed to the caller that owns the photo
            job.error = exc

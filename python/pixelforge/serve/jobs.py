"""The studio's jobs: one worker thread runs them in order from a bounded queue (the kernels
use every core, so two at once would only slow both), each job keeps its latest preview for
whoever streams it, and a cancel stops a running job at its next step."""
from __future__ import annotations

import collections
import itertools
import threading
import time
import traceback

import numpy as np

from . import images as pimg

QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "failed"
FINISHED = (DONE, CANCELLED, FAILED)


class QueueFull(Exception):
    pass


class Job:
    """One request's life: queued -> running -> done | cancelled | failed."""

    def __init__(self, jid, kind, run, settings, inputs):
        self.id, self.kind, self.run, self.settings, self.inputs = jid, kind, run, settings, inputs
        self.status, self.step, self.total = QUEUED, 0, 0
        self.images: list[str] = []           # base64 PNGs, settings embedded (when finished)
        self.detail = None                    # why it failed
        self.error_status = None              # the HTTP status a failure deserves
        self.created, self.seconds = time.time(), None
        self.version = 0                      # bumped on every change a stream should see
        self._preview = None                  # float32 (n, C, H, W), the latest
        self._lock = threading.Lock()
        self.finished = threading.Event()
        self.cancel_requested = False

    # called from the worker thread
    def _progress(self, step, total, preview):
        with self._lock:
            self.step, self.total = int(step), int(total)
            self._preview = np.array(preview, np.float32, copy=True)
            self.version += 1
        return not self.cancel_requested

    def _finish(self, status, images=None, detail=None, error_status=None):
        encoded = []
        if images is not None:
            for i, im in enumerate(images):
                encoded.append(pimg.png_b64(im, dict(self.settings, index=i)))
        with self._lock:
            self.status, self.images, self.detail, self.error_status = status, encoded, detail, error_status
            self.seconds = time.time() - self.created
            self._preview, self.inputs = None, None       # release the arrays
            self.version += 1
        self.finished.set()

    # called from request handlers
    def snapshot(self):
        """(version, status, step, total, preview array or None)."""
        with self._lock:
            return self.version, self.status, self.step, self.total, self._preview

    def result(self) -> dict:
        out = {"id": self.id, "kind": self.kind, "status": self.status, "settings": self.settings,
               "step": self.step, "total": self.total}
        if self.status in FINISHED:
            out.update(images=self.images, seconds=self.seconds, created=self.created)
        if self.detail is not None:
            out["detail"] = self.detail
        return out


class Worker:
    """Runs jobs one at a time from a queue of at most ``queue_size`` waiting jobs (a cancelled
    one leaves the queue at once); keeps the last ``keep`` finished jobs (the history)."""

    def __init__(self, queue_size=16, keep=100):
        self.queue_size = int(queue_size)
        self.jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self.keep = keep
        self._pending: collections.deque[Job] = collections.deque()
        self._ids = itertools.count(1)
        self._cv = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="pixelforge-studio-worker", daemon=True)
        self._thread.start()

    def submit(self, kind, run, settings, inputs) -> Job:
        with self._cv:
            if len(self._pending) >= self.queue_size:
                raise QueueFull(f"the queue is full ({self.queue_size} jobs waiting); try again shortly")
            job = Job(f"j{next(self._ids)}", kind, run, settings, inputs)
            self._pending.append(job)
            self.jobs[job.id] = job
            self._forget_old()
            self._cv.notify()
        return job

    def position(self, job) -> int:
        """How many queued jobs are ahead of this one (0: next, or running)."""
        with self._cv:
            return self._pending.index(job) if job in self._pending else 0

    def cancel(self, job):
        job.cancel_requested = True            # a running job sees it at its next step
        with self._cv:
            if job in self._pending:           # a queued one never starts
                self._pending.remove(job)
                job._finish(CANCELLED)

    def history(self, limit=100) -> list[dict]:
        with self._cv:
            done = [j for j in self.jobs.values() if j.status in (DONE, CANCELLED) and j.images]
        return [j.result() for j in reversed(done)][:limit]

    def _forget_old(self):
        finished = [jid for jid, j in self.jobs.items() if j.status in FINISHED]
        for jid in finished[: max(0, len(finished) - self.keep)]:
            del self.jobs[jid]

    def stop(self):
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout=60)

    def _loop(self):
        while True:
            with self._cv:
                while not self._pending and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                with job._lock:
                    job.status = RUNNING
                    job.version += 1
            try:
                out = job.run.execute(job.kind, job.settings, job.inputs, job._progress)
                job._finish(CANCELLED if job.cancel_requested else DONE, out)
            except (ValueError, TypeError) as e:       # the request, not the server
                job._finish(FAILED, detail=str(e), error_status=400)
            except Exception as e:                     # noqa: BLE001 - the worker must survive anything
                traceback.print_exc()
                job._finish(FAILED, detail=f"{type(e).__name__}: {e}", error_status=500)

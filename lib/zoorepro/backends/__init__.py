"""Inference backends behind a lazy registry (:mod:`zoorepro.backends.registry`: names,
capabilities, lazy import); :mod:`zoorepro.backends.base` says what a backend is, and
:mod:`zoorepro.backends.bench` is the portable path (ais_bench's folder run and timed sweep,
done here in Python).  ``ort``, ``pytorch`` and ``ascend`` are the backends."""
from zoorepro.backends.base import AccuracyJob, Artifacts, Backend, SweepJob
from zoorepro.backends.registry import (PRECISIONS, BackendSpec, create, factory, names,
                                        needs_om, precisions, refuses, register, runs_on_npu,
                                        spec)
from zoorepro.errors import BackendUnavailable

__all__ = ["AccuracyJob", "Artifacts", "Backend", "BackendSpec", "BackendUnavailable",
           "PRECISIONS", "SweepJob", "create", "factory", "names", "needs_om", "precisions",
           "refuses", "register", "runs_on_npu", "spec"]

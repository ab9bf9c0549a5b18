"""The backends by name: what each one is called, what it can do, and where it lives,
imported only when that backend is created (an optional dependency is never imported at
start-up).  Every backend name and capability is read from here: the config's ``backends``
check, the stages (which backends need ATC's ``.om`` models) and the report (which one ran
on an NPU).  Imports only :mod:`zoorepro.errors`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from zoorepro.errors import BackendUnavailable


# The precisions a run may ask for (``precision``); '' asks each backend for its recipe's own.
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class BackendSpec:
    """A backend: ``target`` is ``"module:Class"`` (imported on :func:`factory`) or the
    factory itself; ``needs_om``: it runs ATC's ``.om`` models, so ATC must run first;
    ``npu``: it runs on an Ascend NPU (its figures are NPU figures); ``devices``: the
    ``device`` values it honours; ``precisions``: the ``precision`` values it can run (on
    some device: the backend itself refuses a pair it cannot, e.g. fp16 torch on no CUDA)."""
    name: str
    target: str | Callable
    needs_om: bool = False
    npu: bool = False
    devices: tuple = ("auto", "cpu")
    precisions: tuple = ("fp32",)


_SPECS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("onnxruntime", "zoorepro.backends.ort:OnnxRuntimeBackend",
                devices=("auto", "cpu", "cuda"), precisions=("fp32", "int8")),
    BackendSpec("torch", "zoorepro.backends.pytorch:TorchBackend",
                devices=("auto", "cpu", "cuda"), precisions=("fp32", "fp16")),
    # the ATC model's precision is ATC's --precision_mode (the recipe's: ATC's default fp16)
    BackendSpec("ais_bench", "zoorepro.backends.ascend:AisBenchBackend", needs_om=True,
                npu=True, devices=("auto",), precisions=("fp32", "fp16")),
)}


def register(name: str, *, needs_om: bool = False, npu: bool = False,
             devices: tuple = ("auto", "cpu"), precisions: tuple = ("fp32",)):
    """Add a backend (a plug-in) under ``name``: a decorator for its factory, called as
    ``factory(artifacts, device=..., threads=..., **options)``.  From then on the config
    accepts ``name`` in ``backends``.  A name already taken is refused."""
    if name in _SPECS:
        raise BackendUnavailable(f"backend {name!r} is already registered")

    def deco(factory):
        _SPECS[name] = BackendSpec(name, factory, needs_om=needs_om, npu=npu,
                                   devices=tuple(devices), precisions=tuple(precisions))
        return factory
    return deco


def names() -> list[str]:
    """Every backend name, the built-in ones first."""
    return list(_SPECS)


def spec(name: str) -> BackendSpec:
    if name not in _SPECS:
        raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(names())}")
    return _SPECS[name]


def needs_om(name: str) -> bool:
    return name in _SPECS and _SPECS[name].needs_om


def runs_on_npu(name: str) -> bool:
    return name in _SPECS and _SPECS[name].npu


def precisions(name: str) -> tuple:
    """The ``precision`` values backend ``name`` can run (on some device)."""
    return spec(name).precisions


def refuses(name: str, precision: str) -> str | None:
    """Why backend ``name`` cannot run ``precision`` at all ('' asks for its recipe's own,
    which every backend runs), or None."""
    if not precision or precision in precisions(name):
        return None
    return (f"precision {precision}: the {name} backend runs "
            f"{', '.join(precisions(name))} only")


def factory(name: str) -> Callable:
    target = spec(name).target
    if callable(target):
        return target
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, artifacts, device: str = "auto", threads: int = 0, **options):
    """A new backend ``name`` (see :class:`zoorepro.backends.base.Backend`)."""
    return factory(name)(artifacts, device=device, threads=threads, **options)

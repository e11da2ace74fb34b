"""Compiled scoring: a registered LightGBM model as native code (lleaves over llvmlite).

`scoring.compiled: true` predicts with the model compiled to machine code, about 3-4x faster
than `Booster.predict` on one thread, to within rounding (the same trees summed in the same
order: differences of 1e-15). Only predictions are compiled: reason codes (SHAP) still come from
the Booster.

Compiling a 200-tree, 63-leaf model takes about 15 s, loading the compiled object about 10 ms,
so a compiled object is cached on local disk and a process compiles or loads it once:

- The cache is a local directory (`scoring.compiled_cache`, default `~/.cache/nightjar/compiled`),
  not the lake: the lake may be remote (s3a://) and the object is specific to the machine's CPU.
  Each entry is keyed by the SHA-256 of the model's text and of what shapes the code (lleaves'
  and llvmlite's versions, the CPU, raw or transformed output), so two models never share one,
  and a new model, compiler or machine builds its own.
- An entry is `<key>.o` (the object) and `<key>.json` (the SHA-256 of the object): an object whose
  hash does not match, or without its record, is stale and rebuilt. Builds hold an exclusive
  file lock on `<key>.lock` and move the object into place by an atomic rename, so two processes
  (two Python workers of one executor) build it once and never read a half-written file.
- In a process, compiled models are kept in a module-level dictionary keyed by the model's hash:
  Spark reuses its Python workers, so a worker compiles or loads a model once, not per task.

When compilation is unavailable (lleaves not importable, `NIGHTJAR_COMPILED=off` in the
environment, a model lleaves cannot compile exactly: linear trees, random forests, an objective it
does not know), `predictor` logs one warning and returns None, and scoring falls back to
`Booster.predict`. An unusable cache directory only costs the cache: the model is compiled in
memory.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import logging
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.ensemble import Offset, offset_of

# `NIGHTJAR_COMPILED=off`: never compile, score with Booster.predict (a kill switch, and the tests' way
# to make compilation unavailable for real in a process).
DISABLE_VARIABLE = "NIGHTJAR_COMPILED"
_ENSEMBLE_MARK = '{"nightjar_ensemble"'
# Model features lleaves 1.3.0 does not implement, found in LightGBM's text format. It would
# compile them silently into different predictions (linear trees' leaf models are ignored, a
# random forest's trees are summed instead of averaged), so they are refused.
_UNSUPPORTED = {"is_linear=1": "linear trees", "average_output": "a random forest (averaged trees)"}

_log = logging.getLogger(__name__)
# Model hash -> its compiled predictor, or None when it could not be compiled (not retried).
_COMPILED: dict[str, "CompiledModel | None"] = {}


def default_cache() -> Path:
    """`$XDG_CACHE_HOME/nightjar/compiled`, or `~/.cache/nightjar/compiled`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nightjar" / "compiled"


@dataclass(frozen=True)
class CompiledModel:
    """A model's compiled members: predicts as `models.ensemble.Model.predict` does (without SHAP).

    A single booster is one member with its objective's transformation compiled in. An ensemble
    averages its members' predictions; with an offset each member is compiled to its raw score
    and the mean is taken of exp(raw + log(offset)), as `Ensemble.predict` does.
    """

    members: tuple[Any, ...]  # lleaves.Model, compiled
    offset: Offset | None
    feature_names: tuple[str, ...]

    def predict(self, data: np.ndarray, num_threads: int = 1) -> np.ndarray:
        # lleaves reads the matrix in place only when it is C-contiguous float64.
        data = np.ascontiguousarray(data, dtype=np.float64)
        if self.offset is None:
            outputs = [member.predict(data, n_jobs=num_threads) for member in self.members]
            return outputs[0] if len(outputs) == 1 else np.mean(outputs, axis=0)
        start = self.offset.log(data[:, self.feature_names.index(self.offset.feature)])
        raw = np.asarray([member.predict(data, n_jobs=num_threads) for member in self.members])
        return np.mean(np.exp(raw + start), axis=0)


def predictor(model_text: str, digest: str, cache: str | os.PathLike[str] | None = None) -> CompiledModel | None:
    """The compiled model of `model_text` (whose SHA-256 is `digest`), once per process.

    Args:
        model_text: a booster in LightGBM's text format, or an ensemble's `models.ensemble.to_text`.
        digest: the text's SHA-256 (the caller has it already): the key of the process's cache.
        cache: the directory of compiled objects; None: `default_cache()`.

    Returns:
        The compiled model, or None (after one warning per model and process) when it cannot be
        compiled: the caller then predicts with the Booster.
    """
    if digest in _COMPILED:
        return _COMPILED[digest]
    compiled = None
    try:
        compiled = _compile(model_text, Path(cache) if cache is not None else default_cache())
    except Exception as error:  # noqa: BLE001 - any failure to compile means the Booster scores
        # One line: this repeats in every Python worker's log.
        _log.warning("compiled scoring unavailable, using Booster.predict: %s: %s", type(error).__name__,
                     str(error).splitlines()[0] if str(error) else "")
    _COMPILED[digest] = compiled
    return compiled


def _compile(model_text: str, cache: Path) -> CompiledModel:
    if os.environ.get(DISABLE_VARIABLE, "").lower() in ("off", "0", "false", "no"):
        raise RuntimeError(f"disabled by {DISABLE_VARIABLE}={os.environ[DISABLE_VARIABLE]}")
    importlib.import_module("lleaves")  # an ImportError here is the fallback's commonest cause
    import llvmlite
    import llvmlite.binding as llvm

    if model_text.startswith(_ENSEMBLE_MARK):
        contents = json.loads(model_text)
        texts, offset = list(contents["members"]), offset_of(contents)
    else:
        texts, offset = [model_text], None
    for text in texts:
        for marker, what in _UNSUPPORTED.items():
            if marker in text:
                raise ValueError(f"lleaves does not compile {what}")
    names = tuple(_feature_names(texts[0]))
    # What else shapes the machine code besides the model: a cached object is valid only for these.
    build = f"lleaves={lleaves_version()};llvmlite={llvmlite.__version__};cpu={llvm.get_host_cpu_name()};" \
            f"machine={platform.machine()};raw={offset is not None}"
    members = tuple(_member(text, build, raw_score=offset is not None, cache=cache) for text in texts)
    return CompiledModel(members, offset, names)


def lleaves_version() -> str:
    """The installed lleaves' version (it has no `__version__`)."""
    from importlib.metadata import version

    return version("lleaves")


def _feature_names(text: str) -> list[str]:
    for line in text.splitlines():
        if line.startswith("feature_names="):
            return line.split("=", 1)[1].split(" ")
    raise ValueError("the model text names no features")


def _member(text: str, build: str, raw_score: bool, cache: Path) -> Any:
    """One booster compiled, through the cache when the directory is usable, else in memory."""
    import lleaves

    key = hashlib.sha256(f"{build}\n{text}".encode()).hexdigest()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        _log.warning("compiled-model cache %s unusable (%s): compiling in memory", cache, error)
        with tempfile.TemporaryDirectory(prefix="nightjar-compile-") as scratch:
            source = Path(scratch) / "model.txt"
            source.write_text(text)
            model = lleaves.Model(model_file=str(source))
            model.compile(raw_score=raw_score)
            return model
    source, target, record = cache / f"{key}.txt", cache / f"{key}.o", cache / f"{key}.json"
    with open(cache / f"{key}.lock", "a") as lock:
        # Exclusive: a second process waits for the first one's object instead of compiling it again.
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not source.exists() or source.read_text() != text:
                _atomic_write(source, text.encode())
            if _valid(target, record):
                model = lleaves.Model(model_file=str(source))
                model.compile(cache=str(target), raw_score=raw_score)
                return model
            # Missing or stale: built under a temporary name, verified by its hash once renamed.
            partial = cache / f"{key}.o.tmp-{os.getpid()}"
            partial.unlink(missing_ok=True)
            model = lleaves.Model(model_file=str(source))
            model.compile(cache=str(partial), raw_score=raw_score)
            digest = hashlib.sha256(partial.read_bytes()).hexdigest()
            os.replace(partial, target)
            _atomic_write(record, json.dumps({"object_sha256": digest, "build": build}).encode())
            return model
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _valid(target: Path, record: Path) -> bool:
    """Whether the cached object exists and is the one its record names (not truncated or replaced)."""
    try:
        expected = json.loads(record.read_text())["object_sha256"]
        return hashlib.sha256(target.read_bytes()).hexdigest() == expected
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _atomic_write(path: Path, content: bytes) -> None:
    partial = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    partial.write_bytes(content)
    os.replace(partial, path)

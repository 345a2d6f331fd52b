"""A run folder that survives a crash: its identity, its status and write-once checkpoints.

Layout (besides the tables and figures a finished run writes)::

    run.json       {"format": "granger_prune.run", "version": 1, "status": "unfinished" | "finished",
                    "config_hash": ..., "run_id": ..., "granger_prune": ..., "git_sha": ...,
                    "started": ..., "attempts": n}
    config.json    the resolved configuration
    checkpoints/seed-<k>/pretrained/          θ_pre and the random states after pre-training
    checkpoints/cells/<cell>/round-<r>/       the state after r pruning rounds of a cell
    checkpoints/cells/<cell>/result/          a finished cell: its results row and diagnostics
    .lock          locked (``flock``) by the process running the folder

A run is identified by ``config_hash`` (SHA-256 of the canonical JSON of the
resolved configuration) and ``run_id`` (of the configuration, the package
version and the git SHA where there is one).  A resume finds the run by its
configuration and refuses one started by other code unless forced.

Every checkpoint is a folder written once: its files (its small values in
``payload.json``) go into a temporary folder with a ``manifest.json`` (the run's
``run_id``, what it is, and the SHA-256 of every file), which is flushed to the
disk and renamed into place, so a crash leaves the checkpoint whole or absent.
The digests catch damage and edits of the files; a forged manifest is not
something a digest without a secret can catch.  Loading reads arrays with
``numpy.load(allow_pickle=False)``, tables as CSV, weights with
``torch.load(weights_only=True)`` and states as JSON: nothing executes code.  A
checkpoint whose files do not match their digests (truncated or edited), or that
belongs to another run, is refused with a :class:`CheckpointError` naming the
file.  A folder that another process is running is refused too (its lock), and
is never taken for a crashed run to continue.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

import numpy as np
import pandas as pd
import torch

from .. import __version__
from .._atomic import atomic_write_text, fsync_folder
from ..exceptions import CheckpointError
from ..training.resume import RoundState

FORMAT, VERSION = "granger_prune.run", 1
RUN_FILE, CONFIG_FILE, MANIFEST, PAYLOAD = "run.json", "config.json", "manifest.json", "payload.json"
UNFINISHED, FINISHED = "unfinished", "finished"


def _canonical(data):
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def config_hash(config):
    """SHA-256 (hex, 16 digits) of a :class:`StudyConfig`'s canonical JSON."""
    return hashlib.sha256(_canonical(config.to_dict()).encode()).hexdigest()[:16]


def code_identity():
    """``{"granger_prune": version, "git_sha": sha}`` of the running code."""
    from .runner import git_sha
    return {"granger_prune": __version__, "git_sha": git_sha()}


def run_id(config_digest, code):
    """The run's identity: its configuration and the code that runs it."""
    return hashlib.sha256(_canonical({"config_hash": config_digest, **code}).encode()).hexdigest()[:16]


def _read_json(path, what):
    """The JSON in file ``path`` (FileNotFoundError when absent)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise CheckpointError(f"{path} is not readable {what}: {error}") from None
    return _parse_json(data, path, what)


def _parse_json(data, where, what):
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{where} is not readable {what} (damaged or truncated?): {error}") from None


@contextlib.contextmanager
def _complete(where):
    """A checkpoint that lacks an entry it must hold is refused by name, not by a KeyError."""
    try:
        yield
    except KeyError as error:
        raise CheckpointError(f"{where} lacks {error}: an incomplete or edited checkpoint") from None


def is_run_folder(path):
    """Whether ``path`` holds a ``run.json`` (a run folder, finished or not)."""
    return (Path(path) / RUN_FILE).is_file()


def run_status(path):
    """The ``run.json`` of a run folder, as a dict."""
    info = _read_json(Path(path) / RUN_FILE, "run description")
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise CheckpointError(f"{Path(path) / RUN_FILE} is not a {FORMAT} version {VERSION} file: "
                              f"format={info.get('format')!r}, version={info.get('version')!r}")
    return info


LOCK_FILE = ".lock"


def _try_lock(path):
    """An open file holding an exclusive lock on the run folder ``path``, or None when
    another process holds it.  The system drops the lock when the process ends, however
    it ends (a SIGKILL included), so a crashed run is never locked."""
    handle = open(Path(path) / LOCK_FILE, "a")
    if fcntl is None:  # no advisory locks here (Windows): nothing is refused
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def is_running(path):
    """Whether another process is running the run folder ``path`` now."""
    handle = _try_lock(path)
    if handle is None:
        return True
    handle.close()
    return False


def latest_unfinished(root, config):
    """The most recently started unfinished run folder under ``root`` of ``config`` that no
    process is running now, or None."""
    digest, found = config_hash(config), []
    for path in Path(root).glob("*") if Path(root).is_dir() else []:
        if path.name.startswith(".") or not is_run_folder(path):  # one being made
            continue
        try:
            info = run_status(path)
        except CheckpointError:
            continue
        if info.get("status") == UNFINISHED and info.get("config_hash") == digest and not is_running(path):
            found.append((info.get("started", ""), path.name, path))
    return max(found)[2] if found else None


def _config_differences(saved, current, prefix=""):
    keys = sorted(set(saved) | set(current))
    out = []
    for key in keys:
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} here")
    return out


class RunFolder:
    """A run folder being written: create it, or open an unfinished one to resume.

    Use :meth:`create` or :meth:`resume`; :meth:`open_or_create` picks.
    """

    def __init__(self, path, info):
        self.path, self.info = Path(path), info
        self.checkpoints = self.path / "checkpoints"
        self._lock = None

    def _hold_lock(self):
        """Take the folder's lock for as long as this process runs it."""
        self._lock = _try_lock(self.path)
        if self._lock is None:
            raise ValueError(f"{str(self.path)!r} is being run by another process now; wait for it, "
                             "or start a new run (--fresh)")
        return self

    # -- identity and status -------------------------------------------------------------

    @classmethod
    def create(cls, path, config):
        """A new run folder at ``path`` (which must not exist) for ``config``."""
        path = Path(path)
        if path.exists():
            raise ValueError(f"{str(path)!r} already exists; choose a new folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, code = config_hash(config), code_identity()
        info = {"format": FORMAT, "version": VERSION, "status": UNFINISHED, "config_hash": digest,
                "run_id": run_id(digest, code), **code,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "attempts": 1}
        # made whole beside its place and renamed there: a run folder always has its run.json
        temporary = path.with_name(f".{path.name}.creating-{os.getpid()}")
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        lock = _try_lock(temporary)  # locked before it has its name: the lock moves with the file
        try:
            atomic_write_text(temporary / CONFIG_FILE, json.dumps(config.to_dict(), indent=2))
            cls(temporary, info)._write_info()
            os.rename(temporary, path)
        except BaseException:
            lock.close()
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        fsync_folder(path.parent)
        folder = cls(path, info)
        folder._lock = lock
        return folder

    @classmethod
    def resume(cls, path, config, *, force=False):
        """Open the unfinished run folder ``path`` of ``config`` to continue it.

        Raises ``ValueError`` when it is not a run folder, is finished, or holds
        another configuration (the differing keys are named), and
        :class:`CheckpointError` when it was started by other code (another
        package version or git SHA) unless ``force``.
        """
        path = Path(path)
        if not is_run_folder(path):
            raise ValueError(f"{str(path)!r} is not a run folder (no {RUN_FILE}); nothing to resume")
        folder = cls(path, None)._hold_lock()  # first the lock, then what run.json says
        try:
            return folder._resume(config, force)
        except BaseException:
            folder.release()
            raise

    def _resume(self, config, force):
        path = self.path
        info = run_status(path)
        if info.get("status") == FINISHED:
            raise ValueError(f"{str(path)!r} holds a finished run; start a new one (--fresh or another --out)")
        if info.get("config_hash") != config_hash(config):
            saved = _read_json(path / CONFIG_FILE, "configuration")
            differences = _config_differences(saved, config.to_dict()) or ["(the same keys, another hash)"]
            raise ValueError(f"{str(path)!r} holds a run of another configuration: "
                             + "; ".join(differences[:5]))
        code = code_identity()
        started_by = {key: info.get(key) for key in code}
        if started_by != code and not force:
            raise CheckpointError(
                f"{path / RUN_FILE} was started by granger_prune {started_by['granger_prune']} at git "
                f"{started_by['git_sha']}; this is {code['granger_prune']} at {code['git_sha']}. A resume "
                "across code changes could mix results of two versions: pass --force (force=True) to "
                "resume anyway, or --fresh to start again")
        info["attempts"] = int(info.get("attempts", 1)) + 1
        if started_by != code:
            info.setdefault("forced_resumes", []).append(code)
        self.info = info
        self._write_info()
        shutil.rmtree(self.checkpoints / "tmp", ignore_errors=True)
        return self

    @classmethod
    def open_or_create(cls, path, config, *, force=False):
        """:meth:`resume` an unfinished run folder at ``path``, or :meth:`create` one there."""
        path = Path(path)
        if path.exists() and (is_run_folder(path) or any(path.iterdir())):
            return cls.resume(path, config, force=force)
        if path.exists():
            path.rmdir()  # an empty folder is a new run
        return cls.create(path, config)

    @property
    def resumed(self):
        return self.info["attempts"] > 1

    def _write_info(self):
        atomic_write_text(self.path / RUN_FILE, json.dumps(self.info, indent=2))

    def finish(self):
        """Mark the run finished (after every table is written) and let go of its lock."""
        self.info["status"] = FINISHED
        self.info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._write_info()
        self.release()  # the lock file stays: unlinking a held lock lets two processes hold one

    def release(self):
        """Let go of the folder's lock (the process's end does too)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- write-once checkpoints -----------------------------------------------------------

    def _write(self, relative, kind, files, payload):
        """Write checkpoint ``relative`` (a folder under ``checkpoints/``) from ``files``
        (name → bytes) and a JSON ``payload``, atomically."""
        target = self.checkpoints / relative
        if target.exists():
            raise CheckpointError(f"checkpoint {target} exists already; checkpoints are written once")
        temporary = self.checkpoints / "tmp" / f"{os.getpid()}-{relative.replace('/', '--')}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        digests = {}
        files = dict(files, **{PAYLOAD: json.dumps(payload, indent=1, default=_json_default).encode()})
        for name, data in files.items():
            with open(temporary / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            digests[name] = hashlib.sha256(data).hexdigest()
        manifest = {"run_id": self.info["run_id"], "kind": kind, "files": digests}
        with open(temporary / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        fsync_folder(temporary)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(temporary, target)
        fsync_folder(target.parent)

    def _read(self, relative, kind):
        """``(payload, {name: bytes})`` of checkpoint ``relative``, or None when absent;
        refuses one that is damaged, edited or another run's."""
        folder = self.checkpoints / relative
        if not folder.is_dir():
            return None
        manifest_path = folder / MANIFEST
        try:
            manifest = _read_json(manifest_path, "checkpoint manifest")
        except FileNotFoundError:
            raise CheckpointError(f"{manifest_path} is missing: the checkpoint {folder} is incomplete "
                                  "or was edited; remove the folder to recompute it") from None
        if manifest.get("run_id") != self.info["run_id"]:
            raise CheckpointError(f"{manifest_path} belongs to run {manifest.get('run_id')!r}, this "
                                  f"folder is run {self.info['run_id']!r}: a foreign checkpoint")
        if manifest.get("kind") != kind:
            raise CheckpointError(f"{manifest_path} is a {manifest.get('kind')!r} checkpoint, "
                                  f"expected {kind!r}")
        files = {}
        for name, digest in manifest.get("files", {}).items():
            try:
                data = (folder / name).read_bytes()
            except OSError as error:
                raise CheckpointError(f"{folder / name}, listed in {manifest_path}, cannot be read: "
                                      f"{error}") from None
            if hashlib.sha256(data).hexdigest() != digest:
                raise CheckpointError(f"{folder / name} does not match the SHA-256 in {manifest_path}: "
                                      "truncated or changed after it was written")
            files[name] = data
        if PAYLOAD not in files:
            raise CheckpointError(f"{manifest_path} lists no {PAYLOAD}: an incomplete or edited checkpoint")
        return _parse_json(files.pop(PAYLOAD), folder / PAYLOAD, "checkpoint payload"), files

    # -- what Algorithm 1 and the grid save ------------------------------------------------

    def save_pretrained(self, seed, state_dict, random_state):
        """θ_pre of ``seed`` (a ``state_dict``) and torch's random states after pre-training."""
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
        self._write(f"seed-{seed}/pretrained", "pretrained",
                    {"state_dict.pt": buffer.getvalue(), "random.npz": _npz(random_state)},
                    {"seed": seed, "tensors": {k: list(v.shape) for k, v in state_dict.items()}})

    def load_pretrained(self, seed, model):
        """``(state_dict, random_state)`` saved for ``seed``, checked against ``model``; or None."""
        found = self._read(f"seed-{seed}/pretrained", "pretrained")
        if found is None:
            return None
        payload, files = found
        where = self.checkpoints / f"seed-{seed}/pretrained"
        expected = {k: list(v.shape) for k, v in model.state_dict().items()}
        if payload.get("tensors") != expected:
            raise CheckpointError(f"{where / 'state_dict.pt'} holds tensors "
                                  f"{_shape_difference(payload.get('tensors', {}), expected)}: "
                                  "not a state of this model")
        device = next(iter(model.state_dict().values())).device
        with _complete(where):
            state = torch.load(io.BytesIO(files["state_dict.pt"]), weights_only=True, map_location=device)
            return state, _from_npz(files["random.npz"], where / "random.npz")

    def rounds(self, cell):
        """The round checkpoints of one cell (the ``checkpoint`` of ``prune_and_retrain``)."""
        return RoundCheckpoints(self, cell)

    def save_cell(self, cell, row, diagnostics, seconds):
        """A finished cell: its results row, its diagnostics table and its seconds."""
        files = {} if diagnostics is None else {"diagnostics.csv": diagnostics.to_csv(index=False).encode()}
        self._write(f"cells/{cell}/result", "cell", files, {"row": row, "seconds": float(seconds)})

    def load_cell(self, cell):
        """``(row, diagnostics or None, seconds)`` of a finished cell, or None."""
        found = self._read(f"cells/{cell}/result", "cell")
        if found is None:
            return None
        payload, files = found
        diagnostics = _read_csv(files["diagnostics.csv"]) if "diagnostics.csv" in files else None
        with _complete(self.checkpoints / f"cells/{cell}/result"):
            return payload["row"], diagnostics, payload["seconds"]


class RoundCheckpoints:
    """The state after every pruning round of one cell, for ``prune_and_retrain(checkpoint=)``."""

    def __init__(self, folder, cell):
        self.folder, self.cell = folder, cell

    def _rounds(self):
        where = self.folder.checkpoints / "cells" / self.cell
        return sorted(int(p.name.split("-")[1]) for p in where.glob("round-*")) if where.is_dir() else []

    def load(self):
        """The state after the last saved round, or None."""
        done = self._rounds()
        if not done:
            return None
        relative = f"cells/{self.cell}/round-{done[-1]}"
        payload, files = self.folder._read(relative, "round")
        where = self.folder.checkpoints / relative
        with _complete(where):
            return self._state(payload, files, where)

    @staticmethod
    def _state(payload, files, where):
        arrays = _from_npz(files["state.npz"], where / "state.npz")
        diagnostics = [_read_csv(files[f"diagnostics-{i}.csv"]) for i in range(payload["n_diagnostics"])]
        return RoundState(
            next_round=payload["next_round"],
            alive={name[len("alive/"):]: arrays[name].astype(bool) for name in arrays if name.startswith("alive/")},
            numpy_state=payload["numpy_state"],
            torch_state={name[len("torch/"):]: arrays[name] for name in arrays if name.startswith("torch/")},
            batch_state=arrays.get("batch"), diagnostics=diagnostics, seconds=payload["seconds"])

    def save(self, state):
        """Keep ``state``; return it as :meth:`load` reads it back."""
        arrays = {f"alive/{k}": v for k, v in state.alive.items()}
        arrays.update({f"torch/{k}": v for k, v in state.torch_state.items()})
        if state.batch_state is not None:
            arrays["batch"] = state.batch_state
        files = {"state.npz": _npz(arrays)}
        files.update({f"diagnostics-{i}.csv": frame.to_csv(index=False).encode()
                      for i, frame in enumerate(state.diagnostics)})
        self.folder._write(f"cells/{self.cell}/round-{state.next_round}", "round", files,
                           {"next_round": state.next_round, "numpy_state": state.numpy_state,
                            "seconds": state.seconds, "n_diagnostics": len(state.diagnostics)})
        return self.load()


def _npz(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def _from_npz(data, where):
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{where} is not a plain array file: {error}") from None


#: pandas 3 parses floats exactly by default and deprecates asking for it.
_EXACT_FLOATS = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def _read_csv(data):
    """A table written by ``to_csv``, read back with every float as written."""
    return pd.read_csv(io.BytesIO(data), **_EXACT_FLOATS)


def _shape_difference(saved, expected):
    names = sorted(set(saved) ^ set(expected))
    if names:
        return f"that differ in names ({names[:4]})"
    shapes = [f"{k}: {saved[k]} vs {expected[k]}" for k in expected if saved[k] != expected[k]]
    return f"of other shapes ({'; '.join(shapes[:4])})"


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

"""The model candidate bundle: one directory, ``manifest.json`` plus ``weights.safetensors``.

Every array the serving side needs is in the one safetensors file; nothing is pickled. The
manifest is the caller's (features, window, learners, blend, regimes, calibrator, lineage) plus
what this module adds: ``format_version``, ``arrays`` (name → dtype, shape) and ``files`` (name →
sha256, bytes) for every file but the manifest itself.

**Address.** A bundle's id is the first ``ID_LENGTH`` hex digits of the sha256 of its
``manifest.json`` bytes (written canonically: sorted keys, two-space indent, UTF-8, one final
newline). The manifest holds the sha256 of the weights, so the id commits to every byte of the
bundle; the directory is named by its id under ``BOT4_HOME/models/candidates/``, and the same
bundle written twice is stored once.

**Writes** go to a temporary directory beside the final one, are fsynced and renamed into place,
so a killed write leaves no half bundle (only a ``.writing-*`` directory on a hard kill).

**Reads** verify before mapping anything: the manifest (size, JSON, format version, required
keys, the directory name as its address), the file list (nothing missing, nothing extra), every
file's size (≤ ``max_bytes``) and sha256, and the safetensors header (its length, dtypes, shapes
and offsets). Only then is the data region memory-mapped read-only, each array a zero-copy view.
The file is hashed and mapped through one open descriptor, so a file swapped in between is not
the one mapped. Every refusal is a ``BundleError`` naming the file and the rule broken.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import mmap
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from ..settings import candidates_dir

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
ID_LENGTH = 16  # hex digits of the manifest's sha256 that name the directory
# what the caller's manifest must say, then what write_bundle adds
CALLER_KEYS = ("features", "window", "learners", "blend", "regimes", "calibrator", "lineage")
LINEAGE_KEYS = ("git_commit", "run_id", "partitions", "data_versions", "train_window",
                "profile", "parent")
ADDED_KEYS = ("format_version", "arrays", "files")
REQUIRED_KEYS = ADDED_KEYS + CALLER_KEYS
MAX_BYTES = 1 << 30  # default cap on any one file of a bundle
MAX_MANIFEST_BYTES = 1 << 22
MAX_HEADER_BYTES = 1 << 24  # the safetensors JSON header (safetensors itself allows 100 MB)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_CODES = {np.dtype(v): k for k, v in DTYPES.items()}


class BundleError(ValueError):
    """A bundle that cannot be trusted: the message names the file and the rule it breaks."""


@dataclass(frozen=True)
class StoredBundle:
    path: Path  # the bundle's directory, ``<root>/<id>``
    id: str
    sha256: str  # of manifest.json; ``id`` is its first ID_LENGTH digits
    size: int  # bytes of all files
    reused: bool  # True when an identical bundle was already stored


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest and read-only arrays mapped from the weights file (they
    keep the mapping alive; it closes when the last of them is gone)."""

    path: Path
    id: str
    manifest: dict[str, Any]
    arrays: Mapping[str, np.ndarray]
    buffer: mmap.mmap  # the whole weights file; every array is a view into it


# --- writing ---------------------------------------------------------------------------------


def write_bundle(arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any],
                 root: Path | None = None) -> StoredBundle:
    """Store ``arrays`` and ``manifest`` as a bundle under ``root`` (default
    ``BOT4_HOME/models/candidates``), atomically and content-addressed (module docstring)."""
    tensors = _storable(arrays)
    body = _caller_manifest(manifest)
    root = Path(root) if root is not None else candidates_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=root))
    try:
        save_file(tensors, staging / WEIGHTS)
        _fsync(staging / WEIGHTS)
        body["format_version"] = FORMAT_VERSION
        body["arrays"] = {name: {"dtype": _CODES[a.dtype], "shape": list(a.shape)}
                          for name, a in sorted(tensors.items())}
        body["files"] = {WEIGHTS: {"sha256": _sha256_file(staging / WEIGHTS),
                                   "bytes": (staging / WEIGHTS).stat().st_size}}
        text = canonical_json(body)
        (staging / MANIFEST).write_bytes(text)
        _fsync(staging / MANIFEST)
        _fsync(staging)
        digest = hashlib.sha256(text).hexdigest()
        final = root / digest[:ID_LENGTH]
        size = sum(p.stat().st_size for p in staging.iterdir())
        reused = _place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StoredBundle(final, final.name, digest, size, reused)


def canonical_json(manifest: Mapping[str, Any]) -> bytes:
    """The manifest's bytes as written (and so addressed): sorted keys, no NaN."""
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the manifest is not plain JSON: {error}") from error
    return (text + "\n").encode()


def _storable(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """C-contiguous little-endian copies-if-needed (safetensors reads raw memory)."""
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"array name {name!r} is not storable")
        arr = np.asarray(value)
        code = _CODES.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype)
        if code is None:
            raise ValueError(f"array {name!r} has dtype {arr.dtype}, not one of the storable "
                             f"{', '.join(DTYPES)}")
        # asarray, not ascontiguousarray: that one turns a 0-d array into shape (1,)
        out[name] = np.asarray(arr, dtype=np.dtype(DTYPES[code]), order="C")
    return out


def _caller_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(manifest)
    reserved = sorted(set(body) & set(ADDED_KEYS))
    if reserved:
        raise ValueError(f"manifest keys {reserved} are written by write_bundle; leave them out")
    _check_keys(body, CALLER_KEYS, "the manifest")
    return body


def _place(staging: Path, final: Path) -> bool:
    """Rename ``staging`` to ``final``; True when ``final`` already held this bundle (a
    concurrent writer may win the rename), which is then checked rather than trusted."""
    placed = False
    if not final.exists():
        try:
            os.rename(staging, final)
            placed = True
        except OSError:
            if not final.exists():
                raise
    if placed:
        _fsync(final.parent)
        return False
    shutil.rmtree(staging)
    read_bundle(final)
    return True


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- reading ---------------------------------------------------------------------------------


def read_bundle(path: Path | str, *, max_bytes: int = MAX_BYTES) -> Bundle:
    """The bundle at ``path``, verified completely before its weights are mapped."""
    path = Path(path)
    manifest = _read_manifest(path)
    _check_file_list(path, manifest)
    for name in manifest["files"]:
        if name != WEIGHTS:
            with open(path / name, "rb") as f:
                _check_size_and_digest(f, path / name, manifest["files"][name], max_bytes)
    weights = path / WEIGHTS
    with open(weights, "rb") as f:
        _check_size_and_digest(f, weights, manifest["files"][WEIGHTS], max_bytes)
        start, entries = _read_header(f, weights)
        _check_against_index(entries, manifest["arrays"], weights)
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    arrays = {name: _view(buffer, start, name, entry, weights)
              for name, entry in entries.items()}
    return Bundle(path, path.name, manifest, MappingProxyType(arrays), buffer)


def read_manifest(path: Path | str) -> dict[str, Any]:
    """The manifest of the bundle at ``path``, checked (JSON, format version, required keys, its
    sha256 as the directory's name) without reading the weights: for listing bundles."""
    return _read_manifest(Path(path))


def _fail(path: Path, rule: str) -> BundleError:
    return BundleError(f"{path}: {rule}")


def _check_keys(manifest: Mapping[str, Any], keys: tuple[str, ...],
                where: str | Path) -> None:
    missing = [k for k in keys if k not in manifest]
    if missing:
        raise BundleError(f"{where}: required key {missing[0]!r} is missing "
                          f"(all missing: {', '.join(missing)})")
    lineage = manifest["lineage"]
    if not isinstance(lineage, Mapping):
        raise BundleError(f"{where}: key 'lineage' must be an object")
    missing = [k for k in LINEAGE_KEYS if k not in lineage]
    if missing:
        raise BundleError(f"{where}: required key 'lineage.{missing[0]}' is missing "
                          f"(all missing: {', '.join(missing)})")


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.is_file():
        raise _fail(file, "missing: a bundle directory holds manifest.json")
    if file.stat().st_size > MAX_MANIFEST_BYTES:
        raise _fail(file, f"larger than the {MAX_MANIFEST_BYTES} bytes a manifest may have")
    text = file.read_bytes()
    try:
        manifest = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(file, f"not valid JSON ({error})") from error
    if not isinstance(manifest, dict):
        raise _fail(file, "must hold a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _fail(file, f"format_version {manifest.get('format_version')!r} is not the "
                          f"supported {FORMAT_VERSION}")
    _check_keys(manifest, REQUIRED_KEYS, file)
    for key in ("files", "arrays"):
        if not isinstance(manifest[key], dict):
            raise _fail(file, f"key {key!r} must be an object")
    address = hashlib.sha256(text).hexdigest()[:ID_LENGTH]
    if path.name != address:
        raise _fail(file, f"its sha256 begins {address}, not the directory's name "
                          f"{path.name!r}: the manifest is not the one this bundle was "
                          "written with")
    return manifest


def _check_file_list(path: Path, manifest: dict[str, Any]) -> None:
    files = manifest["files"]
    if WEIGHTS not in files:
        raise _fail(path / MANIFEST, f"'files' does not list {WEIGHTS}")
    for name, entry in files.items():
        if name in (MANIFEST, "", ".", "..") or Path(name).name != name:
            raise _fail(path / MANIFEST, f"'files' lists {name!r}, not a plain file name")
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and type(entry.get("bytes")) is int):
            raise _fail(path / MANIFEST, f"'files' entry {name!r} needs sha256 and bytes")
    present = {p.name for p in path.iterdir()} - {MANIFEST}
    missing, extra = sorted(set(files) - present), sorted(present - set(files))
    if missing:
        raise _fail(path / missing[0], "listed in manifest.json but missing")
    if extra:
        raise _fail(path / extra[0], "not listed in manifest.json: a bundle holds no other "
                                     "files")


def _check_size_and_digest(f: io.BufferedReader, file: Path, entry: dict[str, Any],
                           max_bytes: int) -> None:
    size = os.fstat(f.fileno()).st_size
    if size > max_bytes:
        raise _fail(file, f"{size} bytes exceeds the limit of {max_bytes}")
    if size != entry["bytes"]:
        raise _fail(file, f"{size} bytes, manifest.json says {entry['bytes']} (truncated or "
                          "appended to)")
    f.seek(0)
    digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != entry["sha256"].lower():
        raise _fail(file, f"sha256 {digest} is not manifest.json's {entry['sha256']}: the "
                          "file changed after it was written")


def _read_header(f: io.BufferedReader, file: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """(where the data region starts, tensor entries) after checking every header rule: the
    entries tile the data region exactly, in offset order, each the size its dtype and shape
    need."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    prefix = f.read(8)
    if len(prefix) < 8:
        raise _fail(file, f"{size} bytes: shorter than the 8-byte safetensors header length")
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES:
        raise _fail(file, f"header length {length} exceeds the cap of {MAX_HEADER_BYTES}")
    if 8 + length > size:
        raise _fail(file, f"header length {length} points beyond the end of the file "
                          f"({size} bytes)")
    try:
        header = json.loads(f.read(length))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(file, f"the safetensors header is not valid JSON ({error})") from error
    if not isinstance(header, dict):
        raise _fail(file, "the safetensors header must be a JSON object")
    metadata = header.pop("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise _fail(file, "__metadata__ must map names to strings")
    for name, entry in header.items():
        _check_entry(file, name, entry)
    data_size = size - 8 - length
    end = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, stop = entry["data_offsets"]
        if begin != end:
            rule = "overlaps the previous tensor" if begin < end else "leaves a gap before it"
            raise _fail(file, f"tensor {name!r} starts at {begin}, the previous one ends at "
                              f"{end}: it {rule} (offsets must be contiguous from 0)")
        end = stop
    if end != data_size:
        raise _fail(file, f"the tensors end at {end} but the data region holds {data_size} "
                          "bytes (offsets out of bounds or trailing bytes)")
    return 8 + length, header


def _check_entry(file: Path, name: str, entry: object) -> None:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _fail(file, f"tensor {name!r}: an entry holds exactly dtype, shape, data_offsets")
    if entry["dtype"] not in DTYPES:
        raise _fail(file, f"tensor {name!r}: unknown dtype {entry['dtype']!r} (known: "
                          f"{', '.join(DTYPES)})")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise _fail(file, f"tensor {name!r}: shape {shape!r} is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(n) is int for n in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise _fail(file, f"tensor {name!r}: data_offsets {offsets!r} are not [begin, end] "
                          "with 0 <= begin <= end")
    need = math.prod(shape) * np.dtype(DTYPES[entry["dtype"]]).itemsize
    if need != offsets[1] - offsets[0]:
        raise _fail(file, f"tensor {name!r}: shape {shape} of {entry['dtype']} needs {need} "
                          f"bytes, data_offsets span {offsets[1] - offsets[0]}")


def _check_against_index(entries: dict[str, dict[str, Any]], index: dict[str, Any],
                         file: Path) -> None:
    if set(entries) != set(index):
        extra, missing = sorted(set(entries) - set(index)), sorted(set(index) - set(entries))
        raise _fail(file, f"tensor names differ from manifest.json's 'arrays' (not in the "
                          f"manifest: {extra}; not in the file: {missing})")
    for name, entry in entries.items():
        listed = index[name]
        if not isinstance(listed, dict) or (listed.get("dtype"), listed.get("shape")) != (
                entry["dtype"], entry["shape"]):
            raise _fail(file, f"tensor {name!r} is {entry['dtype']} {entry['shape']}, "
                              f"manifest.json's 'arrays' says {listed!r}")


def _view(buffer: mmap.mmap, start: int, name: str, entry: dict[str, Any],
          file: Path) -> np.ndarray:
    """The tensor as a read-only view of the mapping (no copy)."""
    dtype = np.dtype(DTYPES[entry["dtype"]])
    begin, end = entry["data_offsets"]
    flat = np.frombuffer(buffer, dtype=np.uint8, count=end - begin, offset=start + begin)
    if dtype == np.bool_ and (flat > 1).any():
        raise _fail(file, f"tensor {name!r}: a BOOL tensor holds bytes other than 0 and 1")
    return flat.view(dtype).reshape(entry["shape"])

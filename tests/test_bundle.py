"""The model candidate bundle (bot4_dagster.ml.bundle): a round trip that is bit-identical,
read-only and zero-copy; content addressing and reuse; atomic writes; and a refusal, naming the
file and the rule, of every corrupted variant: the header cases are crafted by hand and the
manifest re-signed (and the directory re-addressed), so the header check itself is what refuses.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot4_dagster.ml import bundle as b
from bot4_dagster.ml.bundle import BundleError, canonical_json, read_bundle, write_bundle

LINEAGE = {"git_commit": "6c32fff" + "0" * 33, "run_id": "run-1", "partitions": ["BTCUSDT"],
           "data_versions": {"market.bars": "v3"}, "train_window": ["2022-01-01", "2022-01-31"],
           "profile": "quick", "parent": None}
MANIFEST = {"features": ["return_1", "return_5", "garch_sigma"], "window": 16,
            "learners": ["attention_lstm", "hist_gradient_boosting"], "blend": "mean",
            "regimes": {"low": 0.01, "high": 0.03, "crisis": 0.06}, "calibrator": "isotonic",
            "lineage": LINEAGE}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    special = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.0])
    return {
        "attention_lstm/lstm.weight_ih_l0": rng.normal(size=(32, 3)).astype(np.float32),
        "hist_gradient_boosting/threshold": np.concatenate([special, rng.normal(size=50)]),
        "hist_gradient_boosting/feature": rng.integers(0, 3, 56),
        "hist_gradient_boosting/is_leaf": rng.integers(0, 2, 56).astype(np.uint8),
        "flags": np.array([True, False, True]),
        "counts": np.arange(6, dtype=np.int32).reshape(2, 3),
        "empty": np.zeros((0, 4)),
        "scalar": np.array(0.25),
    }


@pytest.fixture
def stored(tmp_path) -> b.StoredBundle:
    return write_bundle(_arrays(), MANIFEST, tmp_path / "candidates")


def _same_bits(a: np.ndarray, c: np.ndarray) -> bool:
    return a.dtype == c.dtype and a.shape == c.shape and a.tobytes() == c.tobytes()


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_is_bit_identical_read_only_and_zero_copy(stored):
    bundle = read_bundle(stored.path)
    assert bundle.id == stored.id == stored.path.name
    originals = _arrays()
    assert set(bundle.arrays) == set(originals)
    mapped = np.frombuffer(bundle.buffer, dtype=np.uint8)
    for name, original in originals.items():
        arr = bundle.arrays[name]
        assert _same_bits(arr, original), name
        assert not arr.flags.writeable, name
        if arr.size:
            assert np.shares_memory(arr, mapped), name
            with pytest.raises(ValueError, match="read-only"):
                arr.reshape(-1)[0] = 0
    base = bundle.arrays["hist_gradient_boosting/threshold"]
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and base.obj is bundle.buffer  # frombuffer's export
    assert isinstance(bundle.buffer, mmap.mmap)
    with pytest.raises(TypeError):
        bundle.arrays["extra"] = np.zeros(1)  # type: ignore[index]


def test_manifest_holds_the_caller_keys_the_index_and_every_file_digest(stored):
    text = (stored.path / "manifest.json").read_bytes()
    manifest = json.loads(text)
    assert {k: manifest[k] for k in MANIFEST} == MANIFEST
    assert manifest["format_version"] == b.FORMAT_VERSION
    assert manifest["arrays"]["counts"] == {"dtype": "I32", "shape": [2, 3]}
    assert manifest["arrays"]["scalar"] == {"dtype": "F64", "shape": []}
    weights = (stored.path / "weights.safetensors").read_bytes()
    assert manifest["files"] == {"weights.safetensors": {
        "sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}}
    assert stored.sha256 == hashlib.sha256(text).hexdigest()
    assert stored.size == len(text) + len(weights)
    assert sorted(p.name for p in stored.path.iterdir()) == ["manifest.json",
                                                             "weights.safetensors"]
    assert b"pickle" not in weights and not any(stored.path.glob("*.pkl"))


def test_default_root_is_under_bot4_home(bot4_home):
    stored = write_bundle({"x": np.ones(2)}, MANIFEST)
    assert stored.path.parent == bot4_home.resolve() / "models" / "candidates"
    assert read_bundle(stored.path).arrays["x"].tolist() == [1.0, 1.0]


def test_non_contiguous_and_big_endian_arrays_are_stored_by_value(tmp_path):
    base = np.arange(12.0).reshape(3, 4)
    arrays = {"transposed": base.T, "strided": base[:, ::2], "big": base.astype(">f8")}
    bundle = read_bundle(write_bundle(arrays, MANIFEST, tmp_path).path)
    for name, value in arrays.items():
        np.testing.assert_array_equal(bundle.arrays[name], value)
        assert bundle.arrays[name].dtype == np.dtype("<f8")


# --- content addressing ----------------------------------------------------------------------


def test_the_same_bundle_is_stored_once_and_reused(stored, tmp_path):
    again = write_bundle(_arrays(), dict(MANIFEST), tmp_path / "candidates")
    assert (again.path, again.sha256, again.reused) == (stored.path, stored.sha256, True)
    assert not stored.reused
    assert [p.name for p in (tmp_path / "candidates").iterdir()] == [stored.id]
    assert stored.id == stored.sha256[:b.ID_LENGTH]


def test_any_change_is_a_different_address(stored, tmp_path):
    root = tmp_path / "candidates"
    arrays = _arrays()
    arrays["scalar"] = np.array(0.5)
    other_weights = write_bundle(arrays, MANIFEST, root)
    other_lineage = write_bundle(_arrays(), {**MANIFEST, "lineage": {**LINEAGE,
                                                                     "run_id": "run-2"}}, root)
    ids = {stored.id, other_weights.id, other_lineage.id}
    assert len(ids) == 3
    assert {p.name for p in root.iterdir()} == ids


def test_reusing_a_damaged_bundle_is_refused(stored, tmp_path):
    _flip_byte(stored.path / "weights.safetensors", -1)
    with pytest.raises(BundleError, match="sha256"):
        write_bundle(_arrays(), MANIFEST, tmp_path / "candidates")
    assert [p.name for p in (tmp_path / "candidates").iterdir()] == [stored.id]


# --- atomic writes ---------------------------------------------------------------------------


class Crash(Exception):
    pass


def test_a_crash_while_writing_the_weights_leaves_nothing(tmp_path, monkeypatch):
    def half_then_crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x10\x00\x00\x00")
        raise Crash("killed mid-write")

    monkeypatch.setattr(b, "save_file", half_then_crash)
    root = tmp_path / "candidates"
    with pytest.raises(Crash):
        write_bundle(_arrays(), MANIFEST, root)
    assert root.is_dir() and not any(root.iterdir())


def test_a_crash_just_before_the_rename_leaves_nothing(tmp_path, monkeypatch):
    def crash(src, dst):
        assert sorted(p.name for p in Path(src).iterdir()) == ["manifest.json",
                                                               "weights.safetensors"]
        raise Crash("killed before rename")

    monkeypatch.setattr(b.os, "rename", crash)
    root = tmp_path / "candidates"
    with pytest.raises(Crash):
        write_bundle(_arrays(), MANIFEST, root)
    assert not any(root.iterdir())


def test_a_concurrent_writer_winning_the_rename_is_reused(tmp_path, monkeypatch):
    real_rename = os.rename

    def other_writer_first(src, dst):
        shutil.copytree(src, dst)  # an identical bundle lands first, so ours cannot
        monkeypatch.setattr(b.os, "rename", real_rename)
        raise OSError(errno.ENOTEMPTY, "Directory not empty", str(dst))

    monkeypatch.setattr(b.os, "rename", other_writer_first)
    root = tmp_path / "candidates"
    stored = write_bundle(_arrays(), MANIFEST, root)
    assert stored.reused
    assert [p.name for p in root.iterdir()] == [stored.id]
    assert _same_bits(read_bundle(stored.path).arrays["counts"], _arrays()["counts"])


@pytest.mark.parametrize("manifest, message", [
    ({**MANIFEST, "files": {}}, "written by write_bundle"),
    ({k: v for k, v in MANIFEST.items() if k != "calibrator"}, "required key 'calibrator'"),
    ({**MANIFEST, "lineage": {"run_id": "x"}}, "required key 'lineage.git_commit'"),
    ({**MANIFEST, "window": float("nan")}, "not plain JSON"),
    ({**MANIFEST, "window": object()}, "not plain JSON"),
], ids=["reserved", "missing-key", "missing-lineage", "nan", "object"])
def test_write_refuses_an_unstorable_manifest(tmp_path, manifest, message):
    with pytest.raises(ValueError, match=message):
        write_bundle({"x": np.ones(1)}, manifest, tmp_path)
    assert not any(tmp_path.iterdir())


def test_write_refuses_unstorable_arrays(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        write_bundle({"x": np.array([{}], dtype=object)}, MANIFEST, tmp_path)
    with pytest.raises(ValueError, match="not storable"):
        write_bundle({"__metadata__": np.ones(1)}, MANIFEST, tmp_path)


# --- refusals: helpers that forge a bundle the way an attacker or a bad disk would -------------


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _split(weights: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(weights[:8], "little")
    return json.loads(weights[8:8 + n]), weights[8 + n:]


def _join(header: dict, data: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def _resign(path: Path, weights: bytes | None = None, edit=None) -> Path:
    """The bundle with new weights and/or an edited manifest, re-signed (sha256 and size) and
    moved to its new address: only the rule under test is broken."""
    manifest = json.loads((path / "manifest.json").read_bytes())
    if weights is not None:
        (path / "weights.safetensors").write_bytes(weights)
        manifest["files"]["weights.safetensors"] = {
            "sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)}
    if edit is not None:
        edit(manifest)
    text = canonical_json(manifest)
    (path / "manifest.json").write_bytes(text)
    moved = path.with_name(hashlib.sha256(text).hexdigest()[:b.ID_LENGTH])
    os.rename(path, moved)
    return moved


def _refused(path: Path, file: str, rule: str, **kwargs) -> None:
    with pytest.raises(BundleError, match=rule) as error:
        read_bundle(path, **kwargs)
    assert str(path / file) in str(error.value)


def _forged_header(stored: b.StoredBundle, change) -> Path:
    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    change(header)
    return _resign(stored.path, _join(header, data))


def _offsets(header: dict) -> list[tuple[str, list[int]]]:
    return sorted(((k, v["data_offsets"]) for k, v in header.items() if k != "__metadata__"),
                  key=lambda item: item[1])


# --- refusals: the files and their digests ----------------------------------------------------


def test_truncated_weights_are_refused(stored):
    weights = stored.path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    _refused(stored.path, "weights.safetensors", "truncated")


def test_a_flipped_data_byte_is_refused(stored):
    _flip_byte(stored.path / "weights.safetensors", -20)
    _refused(stored.path, "weights.safetensors", "sha256 .* is not manifest.json's")


def test_a_tampered_manifest_is_refused(stored):
    path = stored.path / "manifest.json"
    path.write_text(path.read_text().replace('"window": 16', '"window": 17'))
    _refused(stored.path, "manifest.json", "not the one this bundle was written with")


def test_a_renamed_bundle_is_refused(stored):
    moved = stored.path.with_name("0" * b.ID_LENGTH)
    os.rename(stored.path, moved)
    _refused(moved, "manifest.json", "directory's name")


def test_an_oversized_file_is_refused(stored):
    size = (stored.path / "weights.safetensors").stat().st_size
    _refused(stored.path, "weights.safetensors", f"{size} bytes exceeds the limit of 100",
             max_bytes=100)
    assert read_bundle(stored.path, max_bytes=size).id == stored.id


def test_a_missing_file_is_refused(stored):
    (stored.path / "weights.safetensors").unlink()
    _refused(stored.path, "weights.safetensors", "listed in manifest.json but missing")


def test_an_extra_file_is_refused(stored):
    (stored.path / "model.pkl").write_bytes(b"\x80\x04")
    _refused(stored.path, "model.pkl", "not listed in manifest.json")


def test_a_missing_manifest_is_refused(stored):
    (stored.path / "manifest.json").unlink()
    _refused(stored.path, "manifest.json", "missing")


def test_a_file_outside_the_directory_is_refused(stored):
    def escape(manifest):
        manifest["files"]["../weights.safetensors"] = manifest["files"]["weights.safetensors"]

    _refused(_resign(stored.path, edit=escape), "manifest.json", "not a plain file name")


# --- refusals: the manifest --------------------------------------------------------------------


def test_a_manifest_that_is_not_json_is_refused(stored):
    (stored.path / "manifest.json").write_bytes(b'{"format_version": 1,')
    _refused(stored.path, "manifest.json", "not valid JSON")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unsupported_format_version_is_refused(stored, version):
    def set_version(manifest):
        manifest["format_version"] = version

    _refused(_resign(stored.path, edit=set_version), "manifest.json",
             f"format_version {version!r} is not the supported 1")


@pytest.mark.parametrize("key", [*b.REQUIRED_KEYS[1:], "lineage.parent", "lineage.run_id"])
def test_a_missing_required_key_is_refused(stored, key):
    def drop(manifest):
        if key.startswith("lineage."):
            del manifest["lineage"][key.split(".", 1)[1]]
        else:
            del manifest[key]

    _refused(_resign(stored.path, edit=drop), "manifest.json", f"required key '{key}'")


def test_an_array_index_that_disagrees_with_the_file_is_refused(stored):
    def reshape(manifest):
        manifest["arrays"]["counts"]["shape"] = [3, 2]

    _refused(_resign(stored.path, edit=reshape), "weights.safetensors",
             r"tensor 'counts' is I32 \[2, 3\], manifest.json's 'arrays' says")


def test_tensor_names_that_differ_from_the_index_are_refused(stored):
    def forget(manifest):
        del manifest["arrays"]["flags"]

    _refused(_resign(stored.path, edit=forget), "weights.safetensors",
             r"not in the manifest: \['flags'\]; not in the file: \[\]")


# --- refusals: the safetensors header ---------------------------------------------------------


def test_a_header_length_beyond_the_file_is_refused(stored):
    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    text = json.dumps(header).encode()
    forged = _join(header, data, length=len(text) + len(data) + 1)
    _refused(_resign(stored.path, forged), "weights.safetensors",
             "points beyond the end of the file")


def test_a_header_length_over_the_cap_is_refused(stored):
    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    _refused(_resign(stored.path, _join(header, data, length=1 << 40)), "weights.safetensors",
             "exceeds the cap")


def test_a_file_shorter_than_the_length_prefix_is_refused(stored):
    _refused(_resign(stored.path, b"\x01\x02\x03"), "weights.safetensors",
             "shorter than the 8-byte")


def test_a_header_that_is_not_json_is_refused(stored):
    _refused(_resign(stored.path, b"\x04\x00\x00\x00\x00\x00\x00\x00{{{{"),
             "weights.safetensors", "header is not valid JSON")


def test_overlapping_offsets_are_refused(stored):
    def overlap(header):
        _, (name, second) = _offsets(header)[:2]
        header[name]["data_offsets"] = [second[0] - 4, second[1] - 4]

    _refused(_forged_header(stored, overlap), "weights.safetensors",
             "overlaps the previous tensor")


def test_a_gap_between_tensors_is_refused(stored):
    def gap(header):
        header["__metadata__"] = {"note": "forged"}
        (name, (begin, end)), = [item for item in _offsets(header) if item[0] == "counts"]
        header[name]["data_offsets"] = [begin + 4, end + 4]

    _refused(_forged_header(stored, gap), "weights.safetensors", "leaves a gap")


def test_offsets_out_of_bounds_are_refused(stored):
    def grow_last(header):  # the last tensor, two items longer: past the end of the data
        name, (begin, end) = _offsets(header)[-1]
        size = np.dtype(b.DTYPES[header[name]["dtype"]]).itemsize
        header[name]["shape"] = [(end - begin) // size + 2]
        header[name]["data_offsets"] = [begin, end + 2 * size]

    _refused(_forged_header(stored, grow_last), "weights.safetensors",
             "out of bounds")


def test_tensors_ending_short_of_the_data_region_are_refused(stored):
    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    _refused(_resign(stored.path, _join(header, data + b"\x00" * 8)), "weights.safetensors",
             "data region holds")


def test_tensors_ending_beyond_the_data_region_are_refused(stored):
    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    _refused(_resign(stored.path, _join(header, data[:-3])), "weights.safetensors",
             "out of bounds")


def test_reversed_offsets_are_refused(stored):
    def reverse(header):
        name, (begin, end) = next(item for item in _offsets(header) if item[0] == "counts")
        header[name]["data_offsets"] = [end, begin]

    _refused(_forged_header(stored, reverse), "weights.safetensors", "0 <= begin <= end")


@pytest.mark.parametrize("dtype", ["BF16", "F8_E4M3", "X64", 7])
def test_an_unknown_dtype_is_refused(stored, dtype):
    def retype(header):
        header["counts"]["dtype"] = dtype

    _refused(_forged_header(stored, retype), "weights.safetensors", "unknown dtype")


def test_a_shape_that_does_not_fit_its_bytes_is_refused(stored):
    def reshape(header):
        header["counts"]["shape"] = [2, 4]

    _refused(_forged_header(stored, reshape), "weights.safetensors",
             r"shape \[2, 4\] of I32 needs 32 bytes, data_offsets span 24")


@pytest.mark.parametrize("entry", [
    {"dtype": "F64", "shape": [1]},
    {"dtype": "F64", "shape": [-1], "data_offsets": [0, 8]},
    {"dtype": "F64", "shape": [1.0], "data_offsets": [0, 8]},
    [1, 2, 3],
], ids=["no-offsets", "negative-shape", "float-shape", "not-an-object"])
def test_a_malformed_tensor_entry_is_refused(stored, entry):
    def replace(header):
        header["scalar"] = entry

    _refused(_forged_header(stored, replace), "weights.safetensors", "tensor 'scalar'")


def test_bool_bytes_other_than_0_and_1_are_refused(stored):
    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    begin = header["flags"]["data_offsets"][0]
    forged = data[:begin] + b"\x07" + data[begin + 1:]
    _refused(_resign(stored.path, _join(header, forged)), "weights.safetensors",
             "BOOL tensor")


def test_nothing_is_mapped_before_every_check_passed(stored, monkeypatch):
    def no_mapping(*args, **kwargs):
        raise AssertionError("mapped before the checks finished")

    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    path = _resign(stored.path, _join(header, data[:-1]))
    monkeypatch.setattr(b.mmap, "mmap", no_mapping)
    _refused(path, "weights.safetensors", "data region holds")


def test_a_forged_but_consistent_bundle_is_accepted(stored):
    """The control for the forgeries: re-signing and re-addressing alone break no rule."""
    header, data = _split((stored.path / "weights.safetensors").read_bytes())
    bundle = read_bundle(_resign(stored.path, _join(header, data)))
    assert _same_bits(bundle.arrays["counts"], _arrays()["counts"])

"""IDX parsing and file verification on small files written by the tests."""

from __future__ import annotations

import gzip
import hashlib
import re

import numpy as np
import pytest
from conftest import idx_bytes, write_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from fmnist import data


def test_parse_idx_reads_hand_made_bytes():
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    array = data.parse_idx(raw)
    assert array.dtype == np.uint8
    assert array.tolist() == [[1, 2, 3], [4, 5, 255]]


def test_parse_idx_round_trips_struct_encoding():
    array = np.arange(2 * 28 * 28, dtype=np.uint64).reshape(2, 28, 28) % 256
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(array)), array)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "wrong magic"),
        (bytes([0, 0, 9, 1, 0, 0, 0, 1, 7]), "wrong magic"),  # signed bytes, not unsigned
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 7]), "wrong magic"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "header"),  # promises 3 dimensions, has 1
        (bytes([0, 0, 8, 0]), "header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 7]), "promises shape (3,)"),  # one byte short
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 7, 7]), "promises shape (1,)"),  # one byte too many
    ],
)
def test_parse_idx_rejects_malformed_input(raw, message):
    with pytest.raises(data.DataError, match=re.escape(message)):
        data.parse_idx(raw, "x.idx")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.builds(lambda tail: bytes([0, 0, 8, 2]) + tail, st.binary(max_size=64)))
def test_parse_idx_on_arbitrary_bytes_returns_array_or_clean_error(raw):
    try:
        array = data.parse_idx(raw)
    except data.DataError as e:
        assert str(e).endswith(".") and "\n" not in str(e)
    else:
        assert array.size == len(raw) - 4 - 4 * array.ndim


def _one_file(tmp_path, content: bytes):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(content)
    raw = idx_bytes(np.array([1, 2, 3], dtype=np.uint8))
    return path, data.DataFile(path.name, hashlib.sha256(raw).hexdigest(), (3,))


def test_read_data_file_accepts_matching_content_in_any_compression(tmp_path):
    raw = idx_bytes(np.array([1, 2, 3], dtype=np.uint8))
    for level in (1, 9):
        path, expected = _one_file(tmp_path, gzip.compress(raw, compresslevel=level))
        assert data.read_data_file(path, expected).tolist() == [1, 2, 3]


def test_read_data_file_errors_name_the_file_and_the_fix(tmp_path):
    raw = idx_bytes(np.array([1, 2, 3], dtype=np.uint8))
    good = gzip.compress(raw)
    changed = bytearray(raw)
    changed[-1] ^= 1
    cases = {
        "not a complete gzip": good[: len(good) // 2],  # truncated
        "not a complete gzip ": b"plain text, not gzip",
        "SHA-256 mismatch": gzip.compress(bytes(changed)),
    }
    for message, content in cases.items():
        path, expected = _one_file(tmp_path, content)
        with pytest.raises(data.DataError) as info:
            data.read_data_file(path, expected)
        text = str(info.value)
        assert message.strip() in text and str(path) in text and f"fmnist download --data-dir={tmp_path}" in text


def test_read_data_file_missing(tmp_path):
    path, expected = _one_file(tmp_path, b"")
    path.unlink()
    with pytest.raises(data.DataError, match=re.escape(f"missing; run `fmnist download --data-dir={tmp_path}`")):
        data.read_data_file(path, expected)


def test_load_checks_counts_and_label_range(tmp_path, monkeypatch, small_arrays):
    bad = dict(small_arrays, train_labels=small_arrays["train_labels"][:-1])
    monkeypatch.setattr(data, "FILES", write_dataset(tmp_path / "a", bad))
    with pytest.raises(data.DataError, match="200 images but 199 labels"):
        data.load(tmp_path / "a")

    labels = small_arrays["test_labels"].copy()
    labels[0] = 10
    monkeypatch.setattr(data, "FILES", write_dataset(tmp_path / "b", dict(small_arrays, test_labels=labels)))
    with pytest.raises(data.DataError, match="outside 0-9"):
        data.load(tmp_path / "b")


def test_load_gives_tensors_of_the_documented_types(small_data, small_arrays):
    dataset = data.load(small_data)
    assert dataset.train_images.shape == (200, 1, 28, 28) and dataset.test_images.shape == (100, 1, 28, 28)
    assert str(dataset.train_images.dtype) == "torch.float32" and str(dataset.train_labels.dtype) == "torch.int64"
    np.testing.assert_allclose(dataset.train_images[:, 0].numpy(), small_arrays["train_images"] / 255.0, rtol=1e-6)
    assert dataset.test_labels.tolist() == small_arrays["test_labels"].tolist()
    assert float(dataset.train_images.min()) >= 0 and float(dataset.train_images.max()) == 1.0


def test_real_files_verify_and_parse(real_dir):
    dataset = data.load(real_dir)
    assert dataset.train_images.shape == (60000, 1, 28, 28) and dataset.test_images.shape == (10000, 1, 28, 28)
    # Each class has 6,000 training and 1,000 test images.
    assert dataset.train_labels.bincount().tolist() == [6000] * 10
    assert dataset.test_labels.bincount().tolist() == [1000] * 10


def test_decompressed_copies_are_cached_and_verified_on_every_read(small_data, small_arrays):
    expected = data.load(small_data).train_labels.tolist()
    copies = sorted((data.cache_dir() / "idx").iterdir())
    assert len(copies) == 4
    contents = {gzip.decompress((small_data / f.name).read_bytes()) for f in data.FILES.values()}
    assert {c.read_bytes() for c in copies} == contents

    for copy in copies:  # a damaged cache copy is not trusted: the .gz is read again
        copy.write_bytes(copy.read_bytes()[:-1] + b"\x01")
    data._load_folder.cache_clear()
    assert data.load(small_data).train_labels.tolist() == expected == small_arrays["train_labels"].tolist()
    assert {c.read_bytes() for c in copies} == contents  # and the copies are mended

    victim = small_data / data.FILES["test_labels"].name  # a damaged .gz is caught despite a good copy
    victim.write_bytes(victim.read_bytes()[:-3])
    data._load_folder.cache_clear()
    with pytest.raises(data.DataError, match="not a complete gzip file"):
        data.load(small_data)

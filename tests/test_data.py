"""Data sources, normalisation, augmentation and batching.

Every file format is written here from its specification (IDX header bytes, a
Python 2 style CIFAR-10 pickle assembled opcode by opcode, PNG through Pillow,
``np.savez``) and read back through :mod:`dwsep_jax.data`; expected values come
from the arrays the test wrote, not from the reader.
"""

import gzip
import os
import pickle
import struct
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from dwsep_jax import data

RNG = np.random.default_rng(1234)


def _images(n, h, w, c):
    return RNG.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def _labels(n, k):
    # Every class appears, so the inferred class count is k.
    return (np.arange(n) % k).astype(np.int64)[RNG.permutation(n)]


# ---------------------------------------------------------------- embedded MNIST


def test_load_dataset_embedded_mnist_with_subset_and_stats():
    cfg = {"name": "mnist_5k", "test_size": 500, "train_examples": 900}
    ds = data.load_dataset(cfg, seed=3)
    assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
    assert len(ds.test) == 500 and len(ds.train) == 900
    assert np.bincount(ds.train.labels).tolist() == [90] * 10
    # Computed on the train split: compare with NumPy on the same pixels.
    pixels = ds.train.images.astype(np.float64) / 255.0
    np.testing.assert_allclose(ds.mean, [pixels.mean()], rtol=1e-10)
    np.testing.assert_allclose(ds.std, [pixels.std()], rtol=1e-10)
    # Configured statistics win over the computed ones.
    cfg.update(mean=(0.5,), std=(0.25,))
    assert data.load_dataset(cfg, seed=3).mean == (0.5,)


def test_load_dataset_rejects_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(data.DatasetError, match="'data.name'='imagenet'"):
        data.load_dataset({"name": "imagenet"}, 0)
    for name in ("mnist_idx", "cifar10", "npz", "image_folder"):
        with pytest.raises(data.DatasetError, match="'data.path' is empty"):
            data.load_dataset({"name": name, "path": ""}, 0)
        missing = str(tmp_path / "absent")
        with pytest.raises(data.DatasetError, match="'data.path'=.*absent' does not"):
            data.load_dataset({"name": name, "path": missing}, 0)
    with pytest.raises(data.DatasetError, match=r"mnist_5k.csv.gz: test_size=5000"):
        data.load_dataset({"name": "mnist_5k", "test_size": 5000}, 0)
    with pytest.raises(data.DatasetError, match="missing.csv"):
        data.load_dataset(
            {"name": "mnist_5k", "path": str(tmp_path / "missing.csv")}, 0
        )


# ---------------------------------------------------------------- sklearn digits


def test_sklearn_digits_matches_scikit_learn():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ds = data.load_dataset({"name": "sklearn_digits", "test_size": 297}, seed=0)
    source = sklearn_datasets.load_digits()
    assert ds.image_shape == (8, 8, 1) and ds.num_classes == 10
    assert len(ds.train) == 1500 and len(ds.test) == 297
    # Each digit is found among the source images, at the 0-16 -> 0-255 scale.
    everything = np.concatenate([ds.train.images, ds.test.images])[..., 0]
    labels = np.concatenate([ds.train.labels, ds.test.labels])
    assert sorted(labels.tolist()) == sorted(source.target.tolist())
    scaled = source.images / 16.0
    for img, label in zip(everything[:50], labels[:50]):
        err = np.abs(scaled - img / 255.0).max(axis=(1, 2))
        match = int(np.argmin(err))
        assert err[match] < 0.5 / 255 + 1e-9 and source.target[match] == label
    # Any object with the keys as attributes works as the data config.
    again = data.load_dataset(SimpleNamespace(name="sklearn_digits", test_size=297), 0)
    np.testing.assert_array_equal(again.test.images, ds.test.images)


def test_sklearn_digits_missing_dependency_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(data.DatasetError, match=r"dwsep-jax\[sklearn\]"):
        data.load_dataset({"name": "sklearn_digits"}, 0)


# ---------------------------------------------------------------- IDX


def _idx_bytes(array, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    dtype = {0x08: ">u1", 0x0C: ">i4"}[code]
    return header + array.astype(dtype).tobytes()


def _write_idx(folder, arrays, gz):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (array, code) in arrays.items():
        raw = _idx_bytes(array, code)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)


@pytest.fixture
def idx_arrays():
    return {
        "train-images-idx3-ubyte": (_images(30, 28, 28, 1)[..., 0], 0x08),
        "train-labels-idx1-ubyte": (_labels(30, 10), 0x08),
        "t10k-images-idx3-ubyte": (_images(12, 28, 28, 1)[..., 0], 0x08),
        "t10k-labels-idx1-ubyte": (_labels(12, 10), 0x0C),
    }


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_reads_raw_and_gzipped(tmp_path, idx_arrays, gz):
    _write_idx(tmp_path, idx_arrays, gz)
    ds = data.load_dataset({"name": "mnist_idx", "path": str(tmp_path)}, 0)
    train_images = idx_arrays["train-images-idx3-ubyte"][0]
    np.testing.assert_array_equal(ds.train.images[..., 0], train_images)
    np.testing.assert_array_equal(
        ds.test.labels, idx_arrays["t10k-labels-idx1-ubyte"][0]
    )
    assert ds.train.images.dtype == np.uint8 and ds.num_classes == 10
    assert ds.test.labels.dtype == np.int32


def test_mnist_idx_bad_files_name_the_file(tmp_path, idx_arrays):
    _write_idx(tmp_path, idx_arrays, gz=False)
    images = tmp_path / "train-images-idx3-ubyte"
    good = images.read_bytes()

    images.write_bytes(good[:-7])
    with pytest.raises(data.DatasetError, match="train-images-idx3-ubyte.*trunc"):
        data.load_mnist_idx(tmp_path)
    images.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(data.DatasetError, match="train-images.*magic"):
        data.load_mnist_idx(tmp_path)
    images.write_bytes(good[:2] + b"\x0a" + good[3:])
    with pytest.raises(data.DatasetError, match="type code 0x0a"):
        data.load_mnist_idx(tmp_path)
    images.write_bytes(good[:10])
    with pytest.raises(data.DatasetError, match="truncated header"):
        data.load_mnist_idx(tmp_path)
    # Images and labels of different lengths.
    images.write_bytes(_idx_bytes(_images(29, 28, 28, 1)[..., 0]))
    with pytest.raises(data.DatasetError, match="29 images but 30 labels"):
        data.load_mnist_idx(tmp_path)
    # A labels file where images belong.
    images.write_bytes(_idx_bytes(_labels(30, 10)))
    with pytest.raises(data.DatasetError, match=r"expected uint8 images"):
        data.load_mnist_idx(tmp_path)
    images.write_bytes(good)

    # A gzipped name holding garbage, and a truncated gzip stream.
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    raw = labels.read_bytes()
    labels.unlink()
    gz = tmp_path / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(data.DatasetError, match="t10k-labels-idx1-ubyte.gz"):
        data.load_mnist_idx(tmp_path)
    gz.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(data.DatasetError, match="t10k-labels-idx1-ubyte.gz"):
        data.load_mnist_idx(tmp_path)
    gz.unlink()
    with pytest.raises(data.DatasetError, match="no t10k-labels-idx1-ubyte"):
        data.load_mnist_idx(tmp_path)
    with pytest.raises(data.DatasetError, match="does not exist"):
        data.load_mnist_idx(tmp_path / "nowhere")


def test_mnist_idx_label_outside_configured_classes(tmp_path, idx_arrays):
    _write_idx(tmp_path, idx_arrays, gz=True)
    cfg = {"name": "mnist_idx", "path": str(tmp_path), "num_classes": 8}
    with pytest.raises(data.DatasetError, match="label 9 is outside.*0-7"):
        data.load_dataset(cfg, 0)
    cfg["num_classes"] = 12
    assert data.load_dataset(cfg, 0).num_classes == 12


# ---------------------------------------------------------------- CIFAR-10


def _py2_cifar_pickle(pixels, labels):
    """A batch as Python 2's cPickle (protocol 2) and NumPy 1.x wrote it."""

    def short(s):
        return b"U" + bytes([len(s)]) + s

    n, width = pixels.shape
    out = [b"\x80\x02}q\x00(", short(b"data")]
    out.append(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
    out.append(b"K\x00\x85" + short(b"b") + b"\x87R")
    out.append(b"(K\x01" + b"M" + struct.pack("<H", n))
    out.append(b"M" + struct.pack("<H", width) + b"\x86")
    out.append(b"cnumpy\ndtype\n" + short(b"u1") + b"K\x00K\x01\x87R")
    out.append(
        b"(K\x03" + short(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    out.append(b"\x89T" + struct.pack("<I", pixels.nbytes) + pixels.tobytes() + b"tb")
    out.append(short(b"labels") + b"](")
    out.extend(b"K" + bytes([int(v)]) for v in labels)
    out.append(b"e" + short(b"batch_label") + short(b"test batch"))
    out.append(b"u.")
    return b"".join(out)


def _cifar_folder(root, n=6, flavours=("py2", 4, 5, 4, 5, "str_keys")):
    """Five train batches and a test batch, written in the given pickle flavours.

    ``'py2'`` is the original Python 2 form, an int a pickle protocol with bytes
    keys, ``'str_keys'`` a protocol-4 pickle keyed by str.
    """
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, flavour in zip(names, flavours):
        pixels = _images(n, 32, 32, 3).reshape(n, -1)
        labels = _labels(n, 5) * 2 if name == "test_batch" else _labels(n, 10)[:n]
        written[name] = (pixels, labels)
        if flavour == "py2":
            blob = _py2_cifar_pickle(pixels, labels)
        elif flavour == "str_keys":
            blob = pickle.dumps({"data": pixels, "labels": [int(v) for v in labels]}, 4)
        else:
            batch = {b"data": pixels, b"labels": [int(v) for v in labels]}
            blob = pickle.dumps(batch, flavour)
        (root / name).write_bytes(blob)
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, 4))
    return written


def test_cifar10_batches_layout_and_pickle_flavours(tmp_path):
    written = _cifar_folder(tmp_path / "cifar-10-batches-py")
    ds = data.load_dataset({"name": "cifar10", "path": str(tmp_path)}, 0)
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10
    assert len(ds.train) == 30 and len(ds.test) == 6
    assert ds.class_names == tuple(f"class{i}" for i in range(10))
    # Row layout from the CIFAR-10 page: 1024 red, 1024 green, 1024 blue values,
    # each plane row-major. Check pixels one by one against that definition.
    first_pixels, first_labels = written["data_batch_1"]
    for n, y, x, c in [(0, 0, 0, 0), (1, 5, 17, 1), (5, 31, 2, 2), (3, 31, 31, 0)]:
        assert ds.train.images[n, y, x, c] == first_pixels[n, c * 1024 + y * 32 + x]
    np.testing.assert_array_equal(ds.train.labels[:6], first_labels)
    last_pixels, _ = written["data_batch_5"]
    assert ds.train.images[24 + 2, 3, 4, 2] == last_pixels[2, 2048 + 3 * 32 + 4]
    np.testing.assert_array_equal(ds.test.labels, written["test_batch"][1])


class _Payload:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_cifar10_refuses_code_in_pickles(tmp_path):
    _cifar_folder(tmp_path)
    marker = str(tmp_path / "pwned")
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Payload(marker)]}
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(evil, 4))
    with pytest.raises(data.DatasetError, match="data_batch_3.*posix.mkdir|os.mkdir"):
        data.load_dataset({"name": "cifar10", "path": str(tmp_path)}, 0)
    assert not os.path.exists(marker)
    # Protocol-2 bytes from Python 3 go through _codecs.encode: also refused.
    blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, 2)
    (tmp_path / "data_batch_3").write_bytes(blob)
    with pytest.raises(data.DatasetError, match="_codecs.encode"):
        data.load_cifar10(tmp_path)


def test_cifar10_bad_batches_name_the_file(tmp_path):
    _cifar_folder(tmp_path)
    batch = tmp_path / "data_batch_2"
    good = batch.read_bytes()
    cases = [
        (good[: len(good) // 2], "data_batch_2 is not a valid batch"),
        (b"garbage", "data_batch_2 is not a valid batch"),
        (pickle.dumps([1, 2, 3], 4), "data_batch_2 is not a batch"),
        (
            pickle.dumps({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}),
            r"data_batch_2: 'data' is uint8 \(2, 1024\)",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
            "data_batch_2: label 10 is outside the class range 0-9",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
            "data_batch_2: 2 images but 1 labels",
        ),
        (
            pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["a"]}),
            "data_batch_2: 'labels'",
        ),
    ]
    for blob, message in cases:
        batch.write_bytes(blob)
        with pytest.raises(data.DatasetError, match=message):
            data.load_cifar10(tmp_path)
    batch.unlink()
    with pytest.raises(data.DatasetError, match="data_batch_2 does not exist"):
        data.load_cifar10(tmp_path)
    with pytest.raises(data.DatasetError, match="cifar-10-batches-py"):
        data.load_cifar10(tmp_path / "nowhere")


# ---------------------------------------------------------------- npz


def test_npz_split_layout_and_single_layout(tmp_path):
    x_train, y_train = _images(40, 6, 5, 3), _labels(40, 4)
    x_test, y_test = _images(8, 6, 5, 3), _labels(8, 4)
    path = tmp_path / "split.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    ds = data.load_dataset({"name": "npz", "path": str(path)}, 0)
    np.testing.assert_array_equal(ds.train.images, x_train)
    np.testing.assert_array_equal(ds.test.labels, y_test)
    assert ds.num_classes == 4 and ds.image_shape == (6, 5, 3)

    # images/labels, grayscale (N, H, W) floats in 0-1, split stratified.
    floats = RNG.random((50, 7, 7)).astype(np.float32)
    labels = _labels(50, 5)
    path = tmp_path / "single.npz"
    np.savez_compressed(path, images=floats, labels=labels)
    ds = data.load_dataset({"name": "npz", "path": str(path), "test_size": 10}, 1)
    assert ds.image_shape == (7, 7, 1) and ds.train.images.dtype == np.float32
    assert np.bincount(ds.test.labels).tolist() == [2] * 5
    everything = np.concatenate([ds.train.images, ds.test.images])[..., 0]
    assert sorted(map(bytes, everything)) == sorted(map(bytes, floats))
    # float images are not divided by 255 again.
    np.testing.assert_allclose(ds.mean, [ds.train.images.mean()], rtol=1e-5)


def test_npz_bad_files(tmp_path):
    path = tmp_path / "bad.npz"
    x, y = _images(10, 4, 4, 1), _labels(10, 2)
    cases = [
        ({"x": x, "y": y}, "bad.npz holds"),
        ({"images": x[:, :, :, 0, None, None], "labels": y}, r"\(N, H, W, C\)"),
        ({"images": x, "labels": y[:9]}, "10 images but 9 labels"),
        ({"images": x, "labels": y.astype(np.float32)}, "integer array"),
        ({"images": x.astype(np.int16), "labels": y}, "dtype int16"),
        ({"images": x, "labels": y - 1}, "negative label -1"),
        ({"images": np.full((10, 2, 2), np.nan), "labels": y}, "NaN"),
        ({"images": x, "labels": np.array(["a"] * 10)}, "integer array"),
    ]
    for arrays, message in cases:
        np.savez(path, **arrays)
        with pytest.raises(data.DatasetError, match=message):
            data.load_npz(path, test_size=4)
    np.savez(path, images=x, labels=y)
    with pytest.raises(data.DatasetError, match="test_size=10"):
        data.load_npz(path, test_size=10)
    with pytest.raises(data.DatasetError, match="label 1 is outside.*0-0"):
        data.load_npz(path, test_size=4, num_classes=1)
    np.savez(path, x_train=x, y_train=y, x_test=x[:, :3], y_test=y)
    with pytest.raises(data.DatasetError, match="x_test images are"):
        data.load_npz(path)
    # Object arrays need pickle, which is never enabled.
    np.savez(path, images=np.array([None] * 10, object), labels=y)
    with pytest.raises(data.DatasetError, match="could not be read"):
        data.load_npz(path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(data.DatasetError, match="bad.npz could not be read"):
        data.load_npz(path)
    with pytest.raises(data.DatasetError, match="missing.npz does not exist"):
        data.load_npz(tmp_path / "missing.npz")


# ---------------------------------------------------------------- image folder


def _save_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def test_image_folder_split_and_unsplit(tmp_path):
    pytest.importorskip("PIL")
    truth = {}
    for split, count in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(count):
                img = _images(1, 5, 6, 3)[0]
                _save_png(tmp_path / "split" / split / cls / f"{i}.png", img)
                truth[(split, cls, i)] = img
    (tmp_path / "split" / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    ds = data.load_dataset({"name": "image_folder", "path": str(tmp_path / "split")}, 0)
    assert ds.class_names == ("cat", "dog") and ds.image_shape == (5, 6, 3)
    assert len(ds.train) == 6 and len(ds.test) == 4
    # Sorted file order within sorted classes: train[3] is dog/0.png.
    np.testing.assert_array_equal(ds.train.images[3], truth[("train", "dog", 0)])
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1, 1]

    gray = tmp_path / "gray"
    for cls in ("a", "b", "c"):
        for i in range(4):
            _save_png(gray / cls / f"{i}.png", _images(1, 4, 4, 1)[0])
    cfg = {"name": "image_folder", "path": str(gray), "test_size": 3}
    ds = data.load_dataset(cfg, 0)
    assert ds.image_shape == (4, 4, 1) and np.bincount(ds.test.labels).tolist() == [
        1,
        1,
        1,
    ]
    cfg.update(channels=3, image_size=(8, 6))
    ds = data.load_dataset(cfg, 0)
    assert ds.image_shape == (8, 6, 3)
    # Gray converted to RGB has three equal channels.
    np.testing.assert_array_equal(ds.train.images[..., 0], ds.train.images[..., 2])


def test_image_folder_bad_input(tmp_path):
    pytest.importorskip("PIL")
    root = tmp_path / "root"
    _save_png(root / "a" / "0.png", _images(1, 4, 4, 3)[0])
    _save_png(root / "a" / "1.png", _images(1, 4, 5, 3)[0])
    _save_png(root / "b" / "0.png", _images(1, 4, 4, 3)[0])
    with pytest.raises(data.DatasetError, match=r"1.png is 5x4 pixels.*4x4"):
        data.load_image_folder(root, test_size=1)
    (root / "a" / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(data.DatasetError, match=r"a/1.png could not be read"):
        data.load_image_folder(root, test_size=1)
    (root / "a" / "1.png").unlink()
    (root / "c").mkdir()
    with pytest.raises(data.DatasetError, match="class folder .*c holds no images"):
        data.load_image_folder(root, test_size=1)
    with pytest.raises(data.DatasetError, match="no class sub-folders"):
        data.load_image_folder(root / "c")
    with pytest.raises(data.DatasetError, match="does not exist"):
        data.load_image_folder(root / "zzz")
    with pytest.raises(ValueError, match="channels=2"):
        data.load_image_folder(root, channels=2)
    with pytest.raises(ValueError, match="image_size"):
        data.load_image_folder(root, image_size=(4,))

    split = tmp_path / "split"
    _save_png(split / "train" / "a" / "0.png", _images(1, 4, 4, 3)[0])
    _save_png(split / "test" / "b" / "0.png", _images(1, 4, 4, 3)[0])
    with pytest.raises(data.DatasetError, match=r"test classes \['b'\] differ"):
        data.load_image_folder(split)


# ---------------------------------------------------------------- transforms


def test_normalize_per_channel_and_bad_arguments():
    images = _images(3, 2, 2, 3)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    out = data.normalize(images, mean, std)
    manual = np.empty(images.shape, np.float64)
    for c in range(3):
        manual[..., c] = (images[..., c] / 255.0 - mean[c]) / std[c]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, manual, rtol=1e-5, atol=1e-5)
    # A scalar broadcasts; float input is taken as 0-1 already.
    floats = images / 255.0
    np.testing.assert_allclose(
        data.normalize(floats, 0.5, 0.25), (floats - 0.5) / 0.25, rtol=1e-5
    )
    with pytest.raises(ValueError, match="mean=.*one per channel"):
        data.normalize(images, (0.1, 0.2), std)
    with pytest.raises(ValueError, match="std=.*positive"):
        data.normalize(images, mean, (0.1, 0.0, 0.1))


def test_channel_stats_match_numpy():
    images = _images(5000, 3, 3, 2)
    mean, std = data.channel_stats(images)
    x = images / 255.0
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)), rtol=1e-9)


def test_dataset_checks_its_invariants():
    split = data.Split(_images(4, 2, 2, 3), np.array([0, 1, 2, 3], np.int32))
    with pytest.raises(data.DatasetError, match="label 3 is outside.*0-2"):
        data.Dataset("toy", split, split, 3)
    with pytest.raises(data.DatasetError, match="mean has 2 values for 3 channels"):
        data.Dataset("toy", split, split, 4, mean=(0.1, 0.2), std=(1.0,))
    other = data.Split(_images(4, 2, 3, 3), split.labels)
    with pytest.raises(data.DatasetError, match="test images are"):
        data.Dataset("toy", split, other, 4)
    flat = data.Split(np.zeros((4, 2, 2, 1), np.uint8), split.labels)
    with pytest.raises(data.DatasetError, match="constant channel"):
        data.Dataset("toy", flat, flat, 4)
    ds = data.Dataset("toy", split, split, 4, mean=(0.5,), std=(0.5,))
    assert ds.mean == (0.5, 0.5, 0.5)


def test_augment_identity_flip_and_crop_windows():
    images = _images(64, 6, 7, 2)
    assert data.augment(images, 0) is images

    flipped = data.augment(images, 5, flip=True)
    mirrored = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)]
    kept = [np.array_equal(f, i) for f, i in zip(flipped, images)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert 16 < sum(mirrored) < 48  # about half of 64

    p = 2
    cropped = data.augment(images, (7, 1, 3), crop_padding=p)
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = set()
    for out, src in zip(cropped, padded):
        hits = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if np.array_equal(out, src[dy : dy + 6, dx : dx + 7])
        ]
        assert hits, "every crop is a window of the zero-padded image"
        offsets.update(hits)
    assert len(offsets) > 10  # offsets vary over the 25 possible
    assert cropped.dtype == np.uint8 and cropped.shape == images.shape

    floats = images.astype(np.float32)
    both = data.augment(floats, (7, 1, 3), crop_padding=p, flip=True)
    np.testing.assert_array_equal(
        both, data.augment(floats, np.random.default_rng((7, 1, 3)), p, True)
    )
    assert not np.array_equal(both, data.augment(floats, (7, 1, 4), p, True))


def test_augment_rejects_bad_arguments():
    images = _images(2, 4, 4, 1)
    with pytest.raises(ValueError, match=r"images has shape \(4, 4, 1\)"):
        data.augment(images[0], 0, crop_padding=1)
    with pytest.raises(ValueError, match="crop_padding=-1"):
        data.augment(images, 0, crop_padding=-1)
    with pytest.raises(TypeError, match="crop_padding=1.5"):
        data.augment(images, 0, crop_padding=1.5)
    with pytest.raises(TypeError, match="crop_padding=True"):
        data.augment(images, 0, crop_padding=True)
    with pytest.raises(TypeError, match="flip=1"):
        data.augment(images, 0, flip=1)


def test_train_batches_resume_mid_epoch_and_differ_by_epoch():
    labels = _labels(50, 5).astype(np.int32)
    split = data.Split(_images(50, 8, 8, 3), labels)
    ds = data.Dataset("toy", split, split, 5)
    kwargs = dict(seed=11, crop_padding=2, flip=True)
    full = list(data.train_batches(ds, 8, epoch=3, **kwargs))
    assert len(full) == 6  # 50 // 8, remainder dropped
    resumed = list(data.train_batches(ds, 8, epoch=3, start_step=4, **kwargs))
    assert len(resumed) == 2
    for (a, la), (b, lb) in zip(full[4:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    again = list(data.train_batches(ds, 8, epoch=3, **kwargs))
    np.testing.assert_array_equal(full[0][0], again[0][0])
    other = list(data.train_batches(ds, 8, epoch=4, **kwargs))
    assert not np.array_equal(full[0][1], other[0][1])
    # Images are normalised with the dataset's statistics.
    plain = list(data.train_batches(ds, 50, seed=0, epoch=0))[0][0]
    np.testing.assert_allclose(plain.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(plain.std(axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_batches_pads_and_rejects_bad_sizes():
    split = data.Split(_images(5, 2, 2, 1), np.arange(5, dtype=np.int32))
    out = list(data.batches(split, 2, drop_remainder=False))
    assert [b[1].tolist() for b in out] == [[0, 1], [2, 3], [4, 0]]
    assert out[-1][2].tolist() == [1.0, 0.0]
    assert [b[1].tolist() for b in data.batches(split, 2, start_batch=1)] == [[2, 3]]
    with pytest.raises(ValueError, match="batch_size=0"):
        list(data.batches(split, 0))
    with pytest.raises(ValueError, match="start_batch=-1"):
        list(data.batches(split, 2, start_batch=-1))

"""Data set readers on files in the real formats (CIFAR pickles, IDX), and the download path
against a loopback HTTP server."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd

from data import DEBIAN_FASHION_MNIST, DataError, load_dataset
from data.sets import load_fashion_mnist


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- CIFAR-100

def _pickle_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def make_cifar100_archive(folder: Path, n_train=20, n_test=10) -> tuple[Path, dict]:
    """A cifar-100-python.tar.gz in the official layout, with its md5s."""
    rng = np.random.default_rng(0)
    members = {
        "train": _pickle_bytes({"data": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8),
                                "fine_labels": list(rng.integers(0, 100, n_train).tolist())}),
        "test": _pickle_bytes({"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
                               "fine_labels": list(range(n_test))}),
        "meta": _pickle_bytes({"fine_label_names": [f"class{i}" for i in range(100)]}),
    }
    archive = folder / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sums = {name: hashlib.md5(data).hexdigest() for name, data in members.items()}
    return archive, sums


@pytest.fixture
def http_server(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1 (a free port) for the duration of a test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _point_cifar100_at(monkeypatch, url: str, tgz_md5: str, sums: dict) -> None:
    monkeypatch.setattr(tvd.CIFAR100, "url", url)
    monkeypatch.setattr(tvd.CIFAR100, "tgz_md5", tgz_md5)
    monkeypatch.setattr(tvd.CIFAR100, "train_list", [["train", sums["train"]]])
    monkeypatch.setattr(tvd.CIFAR100, "test_list", [["test", sums["test"]]])
    monkeypatch.setattr(tvd.CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": sums["meta"]})


def test_cifar100_download_from_loopback_then_parse(http_server, tmp_path, monkeypatch):
    www, base = http_server
    archive, sums = make_cifar100_archive(www)
    _point_cifar100_at(monkeypatch, f"{base}/{archive.name}", md5(archive), sums)
    ds = load_dataset("cifar100", tmp_path / "data")
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert ds.test.labels.tolist() == list(range(10))
    assert ds.num_classes == 100 and ds.classes[3] == "class3" and ds.channels == 3
    assert (ds.crop_pad, ds.flip, ds.default_eps) == (4, True, 8 / 255)
    # CHW order: a CIFAR row is 1024 red, 1024 green, then 1024 blue values
    row = np.random.default_rng(0).integers(0, 256, (20, 3072), dtype=np.uint8)[0]
    assert torch.equal(ds.train.images[0], torch.from_numpy(row).view(3, 32, 32))


def test_cifar100_checksum_mismatch_is_refused(http_server, tmp_path, monkeypatch):
    www, base = http_server
    archive, sums = make_cifar100_archive(www)
    _point_cifar100_at(monkeypatch, f"{base}/{archive.name}", "0" * 32, sums)
    with pytest.raises(DataError, match="could not be downloaded"):
        load_dataset("cifar100", tmp_path / "data")
    # the bad download stays on disk; the next run names it as corrupt instead of re-parsing it
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_dataset("cifar100", tmp_path / "data")


def test_cifar_offline_names_the_file_to_place(tmp_path, monkeypatch):
    monkeypatch.setattr(tvd.CIFAR100, "url", "http://127.0.0.1:9/cifar-100-python.tar.gz")  # closed port
    with pytest.raises(DataError) as err:
        load_dataset("cifar100", tmp_path / "none")
    msg = str(err.value)
    assert "cifar-100-python.tar.gz" in msg and str(tmp_path / "none") in msg and "\n" not in msg


def test_cifar_truncated_archive_is_a_clear_error(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_dataset("cifar10", tmp_path, download=False)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("imagenet")


# ----------------------------------------------------------------------------- Fashion-MNIST (IDX)

def _idx_images(n: int) -> bytes:
    pixels = (np.arange(n * 784) % 251).astype(np.uint8).tobytes()
    return struct.pack(">IIII", 2051, n, 28, 28) + pixels


def _idx_labels(n: int) -> bytes:
    return struct.pack(">II", 2049, n) + (np.arange(n) % 10).astype(np.uint8).tobytes()


def write_fmnist_gz(folder: Path, *, train_images: bytes | None = None) -> Path:
    """The four official Fashion-MNIST .gz files at full size (zeros-like content compresses well)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"train-images-idx3-ubyte": train_images or _idx_images(60000),
             "train-labels-idx1-ubyte": _idx_labels(60000),
             "t10k-images-idx3-ubyte": _idx_images(10000),
             "t10k-labels-idx1-ubyte": _idx_labels(10000)}
    for name, data in files.items():
        with gzip.open(folder / f"{name}.gz", "wb", compresslevel=1) as f:
            f.write(data)
    return folder


def test_fashion_mnist_from_a_debian_style_folder(tmp_path):
    system = write_fmnist_gz(tmp_path / "usr-share")
    ds = load_fashion_mnist(tmp_path / "data", download=False, system_dir=system)
    assert ds.train.images.shape == (60000, 1, 32, 32) and ds.test.images.shape == (10000, 1, 32, 32)
    assert ds.train.images[:, :, :2].sum() == 0 and ds.train.images[:, :, :, -2:].sum() == 0  # 2-px zero border
    first = torch.from_numpy((np.arange(784) % 251).astype(np.uint8)).view(28, 28)
    assert torch.equal(ds.train.images[0, 0, 2:30, 2:30], first)
    assert ds.test.labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert ds.classes[0] == "T-shirt/top" and (ds.crop_pad, ds.default_eps) == (2, 0.1)
    again = load_fashion_mnist(tmp_path / "data", download=False, system_dir=tmp_path / "gone")  # installed copy
    assert torch.equal(again.train.images, ds.train.images)


def test_fashion_mnist_wrong_header_is_refused(tmp_path):
    bad = struct.pack(">IIII", 2051, 59999, 28, 28) + bytes(59999 * 784)
    system = write_fmnist_gz(tmp_path / "sys", train_images=bad)
    with pytest.raises(DataError, match="not the official train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path / "data", download=False, system_dir=system)


def test_fashion_mnist_truncated_gz_is_refused(tmp_path):
    system = write_fmnist_gz(tmp_path / "sys")
    raw = (system / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (system / "t10k-labels-idx1-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cannot be read"):
        load_fashion_mnist(tmp_path / "data", download=False, system_dir=system)


def test_fashion_mnist_missing_offline_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "data", download=False, system_dir=tmp_path / "nothing")


@pytest.mark.realdata
@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_real_fashion_mnist(tmp_path):
    ds = load_dataset("fashion-mnist", tmp_path)
    assert len(ds.train) == 60000 and len(ds.test) == 10000 and ds.channels == 1
    assert torch.bincount(ds.test.labels).tolist() == [1000] * 10
    assert abs(ds.channel_stats()[0][0] - 0.2860 * 784 / 1024) < 0.001  # official mean 0.2860, 28->32 zero border


# ----------------------------------------------------------------------------- digits

def test_digits_split_is_fixed_and_stratified(digits):
    assert (len(digits.train), len(digits.test)) == (1437, 360)
    assert digits.train.images.shape[1:] == (1, 32, 32) and digits.flip is False
    counts = torch.bincount(digits.test.labels)
    assert counts.min() >= 35 and counts.max() <= 37
    assert torch.equal(load_dataset("digits").test.labels, digits.test.labels)

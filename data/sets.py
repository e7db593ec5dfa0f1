"""Data sets as uint8 tensors: CIFAR-100/10 and Fashion-MNIST through torchvision, digits through scikit-learn.

Every split is ``images`` uint8 [N, C, 32, 32] (channel count kept: 1 for grey, 3 for colour) and
``labels`` int64 [N]. torchvision does download, checksum, extraction and parsing; this module adds
the offline story (clear one-line errors naming the file to place and where), Debian's Fashion-MNIST
files, and 28 -> 32 padding.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from registry import Registry

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


class DataError(Exception):
    """A data set that cannot be found, downloaded or read (one line, for the user)."""


@dataclass
class Split:
    images: torch.Tensor  # [N, C, 32, 32] uint8
    labels: torch.Tensor  # [N] int64

    def __len__(self) -> int:
        return self.labels.numel()


@dataclass
class ImageDataset:
    """Train and test splits plus what the rest of the pipeline needs to know about them."""
    name: str
    train: Split
    test: Split
    classes: list[str]
    crop_pad: int          # random-crop padding for training (4 for 32-px data, 2 for 28-px data)
    flip: bool             # horizontal flips make sense for this data
    default_eps: float     # L-inf threat model in pixel units
    source: str = ""       # where the files came from (for logs)
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images in [0, 1] (the classifier's first layer)."""
        x = self.train.images.float().div_(255)
        return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


# ----------------------------------------------------------------------------- registry

DATASETS = Registry("data set", error=DataError)
register_dataset = DATASETS.register
dataset_names = DATASETS.names


def load_dataset(name: str, data_dir: str | os.PathLike = "datasets", *, download: bool = True,
                 **kw) -> ImageDataset:
    """Load a data set by name. Raises DataError (one line) when it cannot be had."""
    loader = DATASETS.lookup(name)
    data_dir = Path(data_dir)
    new = _first_missing(data_dir)          # a folder this call may create: removed again if loading fails
    try:                                    # with nothing in it (a failed download's bytes are kept: the
        return loader(data_dir, download=download, **kw)     # next run names them as corrupt)
    except DataError:
        if new is not None and new.is_dir() and not any(p.is_file() for p in new.rglob("*")):
            shutil.rmtree(new, ignore_errors=True)
        raise


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None when ``path`` exists)."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


def _to_split(images_nhwc_or_nchw: torch.Tensor, labels, pad_to: int = 32) -> Split:
    x = images_nhwc_or_nchw
    if x.dim() == 3:                        # [N, H, W] grey
        x = x.unsqueeze(1)
    pad = (pad_to - x.shape[-1]) // 2
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad))  # zero border: 28 -> 32
    return Split(x.contiguous(), torch.as_tensor(labels, dtype=torch.int64))


# ----------------------------------------------------------------------------- CIFAR

def _cifar(cls_name: str, data_dir: Path, download: bool) -> tuple:
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import check_integrity

    cls = getattr(tvd, cls_name)
    archive = data_dir / cls.filename
    hint = (f"place {cls.filename} (from {cls.url}, md5 {cls.tgz_md5}) in {data_dir}/ "
            f"or run once with network access")
    try:
        return cls(str(data_dir), train=True), cls(str(data_dir), train=False)
    except RuntimeError:
        pass  # not extracted yet, or extracted files corrupt: fall through to the archive
    if archive.exists() and not check_integrity(str(archive), cls.tgz_md5):
        raise DataError(f"{archive} is corrupt or truncated (md5 mismatch): delete it and {hint}")
    if not archive.exists() and not download:
        raise DataError(f"{cls_name} not found in {data_dir}: {hint}")
    try:
        tr = cls(str(data_dir), train=True, download=True)
        te = cls(str(data_dir), train=False, download=False)
    except Exception as e:  # URLError offline, RuntimeError on checksum mismatch, tar errors
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise DataError(f"{cls_name} not found in {data_dir} and could not be downloaded ({reason}): {hint}") from None
    return tr, te


def _cifar_dataset(name: str, cls_name: str, data_dir: Path, download: bool) -> ImageDataset:
    tr, te = _cifar(cls_name, data_dir, download)
    to_nchw = lambda d: torch.from_numpy(d.data).permute(0, 3, 1, 2)  # [N,32,32,3] -> [N,3,32,32]
    return ImageDataset(name, _to_split(to_nchw(tr), tr.targets), _to_split(to_nchw(te), te.targets),
                        list(tr.classes), crop_pad=4, flip=True, default_eps=8 / 255, source=str(data_dir))


@register_dataset("cifar100")
def load_cifar100(data_dir: Path, download: bool = True) -> ImageDataset:
    return _cifar_dataset("cifar100", "CIFAR100", data_dir, download)


@register_dataset("cifar10")
def load_cifar10(data_dir: Path, download: bool = True) -> ImageDataset:
    return _cifar_dataset("cifar10", "CIFAR10", data_dir, download)


# ----------------------------------------------------------------------------- Fashion-MNIST

# IDX files: (magic, count, uncompressed size). Debian re-compressed the .gz files, so their
# checksums differ from upstream; these properties of the contents are what we can verify.
_FMNIST_FILES = {
    "train-images-idx3-ubyte": (2051, 60000, 16 + 60000 * 28 * 28),
    "train-labels-idx1-ubyte": (2049, 60000, 8 + 60000),
    "t10k-images-idx3-ubyte": (2051, 10000, 16 + 10000 * 28 * 28),
    "t10k-labels-idx1-ubyte": (2049, 10000, 8 + 10000),
}


def _verify_idx(raw: bytes, name: str, expect: tuple[int, int, int], origin: Path) -> None:
    magic, count, size = expect
    if len(raw) < 8:
        raise DataError(f"{origin} is truncated ({len(raw)} bytes)")
    got_magic, got_count = struct.unpack(">II", raw[:8])
    if got_magic != magic or got_count != count or len(raw) != size:
        raise DataError(f"{origin} is not the official {name} (IDX magic {got_magic}, count {got_count}, "
                        f"{len(raw)} bytes; expected {magic}, {count}, {size}): replace it")
    if magic == 2051 and struct.unpack(">II", raw[8:16]) != (28, 28):
        raise DataError(f"{origin} does not hold 28x28 images")


def _install_fmnist_gz(src_dir: Path, raw_folder: Path) -> None:
    """Verify the four official ``.gz`` files in ``src_dir`` and decompress them where torchvision looks."""
    raw_folder.mkdir(parents=True, exist_ok=True)
    for name, expect in _FMNIST_FILES.items():
        src = src_dir / f"{name}.gz"
        try:
            with gzip.open(src, "rb") as f:
                raw = f.read()
        except (OSError, EOFError) as e:
            raise DataError(f"{src} cannot be read ({e}): replace it with the official file") from None
        _verify_idx(raw, name, expect, src)
        tmp = raw_folder / f".{name}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, raw_folder / name)


def _fmnist_sources(data_dir: Path, system_dir: Path) -> Path | None:
    for d in (data_dir, data_dir / "fashion-mnist", system_dir):
        if all((d / f"{n}.gz").is_file() for n in _FMNIST_FILES):
            return d
    return None


@register_dataset("fashion-mnist")
def load_fashion_mnist(data_dir: Path, download: bool = True,
                       system_dir: Path = DEBIAN_FASHION_MNIST) -> ImageDataset:
    """Fashion-MNIST 60k/10k, 28x28 grey padded to 32x32.

    Looked for, in order: torchvision's layout under ``data_dir`` (``FashionMNIST/raw``); the four
    official ``.gz`` files in ``data_dir``, ``data_dir/fashion-mnist`` or ``system_dir`` (Debian's
    ``dataset-fashion-mnist`` package); else downloaded by torchvision (with its md5 check).
    """
    from torchvision.datasets import FashionMNIST

    source = str(data_dir)
    if not _fmnist_complete(data_dir):
        src = _fmnist_sources(data_dir, Path(system_dir))
        if src is not None:
            _install_fmnist_gz(src, data_dir / "FashionMNIST" / "raw")
            source = str(src)
        elif download:
            try:
                FashionMNIST(str(data_dir), train=True, download=True)
            except Exception as e:
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
                raise DataError(f"Fashion-MNIST not found and could not be downloaded ({reason}): "
                                f"{_fmnist_hint(data_dir)}") from None
        else:
            raise DataError(f"Fashion-MNIST not found: {_fmnist_hint(data_dir)}")
    try:
        tr, te = FashionMNIST(str(data_dir), train=True), FashionMNIST(str(data_dir), train=False)
    except Exception as e:
        raise DataError(f"Fashion-MNIST files in {data_dir}/FashionMNIST/raw cannot be parsed ({e}): "
                        f"delete that folder and run again") from None
    return ImageDataset("fashion-mnist", _to_split(tr.data, tr.targets), _to_split(te.data, te.targets),
                        list(tr.classes), crop_pad=2, flip=True, default_eps=0.1, source=source)


def _fmnist_complete(data_dir: Path) -> bool:
    raw = data_dir / "FashionMNIST" / "raw"
    return all((raw / n).is_file() and (raw / n).stat().st_size == e[2] for n, e in _FMNIST_FILES.items())


def _fmnist_hint(data_dir: Path) -> str:
    names = ", ".join(f"{n}.gz" for n in _FMNIST_FILES)
    return (f"install Debian's package (apt-get install -y dataset-fashion-mnist) or place {names} "
            f"in {data_dir}/")


# ----------------------------------------------------------------------------- digits

@register_dataset("digits")
def load_digits(data_dir: Path | None = None, download: bool = True, test_fraction: float = 0.2) -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), upscaled to 32x32, fixed stratified split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = torch.from_numpy(d.images).float().div_(16).unsqueeze(1)               # [N,1,8,8] in [0,1]
    x = F.interpolate(x, size=32, mode="bilinear", align_corners=False)        # [N,1,32,32]
    x = x.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    idx = torch.arange(len(x)).numpy()
    tr_idx, te_idx = train_test_split(idx, test_size=test_fraction, stratify=d.target, random_state=0)
    y = torch.from_numpy(d.target)
    return ImageDataset("digits", _to_split(x[tr_idx], y[tr_idx]), _to_split(x[te_idx], y[te_idx]),
                        [str(i) for i in range(10)], crop_pad=2, flip=False, default_eps=0.1,
                        source="scikit-learn")


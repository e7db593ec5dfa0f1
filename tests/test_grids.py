"""Labelled grids: PNG size, labels and captions widen/heighten the image, the tensor matches the file."""
import numpy as np
import pytest
import torch
from PIL import Image

from grids import labelled_grid, save_labelled_grid


def test_plain_grid_size(tmp_path):
    x = torch.rand(6, 1, 8, 8)
    grid = save_labelled_grid(x, tmp_path / "g.png", nrow=3)
    # make_grid: 3 columns * (8 + 2) + 2 wide, 2 rows * (8 + 2) + 2 high, grey -> RGB
    assert grid.shape == (3, 22, 32)
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (32, 22) and im.mode == "RGB"


def test_labels_and_captions(tmp_path):
    x = torch.rand(4, 3, 16, 16)
    plain = labelled_grid(x, 2)
    grid = save_labelled_grid(x, tmp_path / "sub" / "g.png", nrow=2, row_labels=["cat", "dog"],
                              col_labels=["clean", "adv"], cell_captions=["a", "b", "c", "d"], scale=2)
    assert grid.shape[1] > 2 * plain.shape[1] and grid.shape[2] > 2 * plain.shape[2]
    assert 0 <= grid.min() and grid.max() <= 1
    with Image.open(tmp_path / "sub" / "g.png") as im:
        assert im.size == (grid.shape[2], grid.shape[1])
        saved = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
    assert torch.allclose(saved, grid, atol=1 / 255 + 1e-6)
    # the row label column is drawn: some dark pixels left of the first image
    assert (grid[:, :, :10] < 0.5).any()


def test_bad_inputs():
    with pytest.raises(ValueError):
        labelled_grid(torch.rand(2, 2, 8, 8), 2)
    with pytest.raises(ValueError):
        labelled_grid(torch.rand(2, 1, 8, 8), 2, cell_captions=["only one"])

"""Labelled image grids: ``torchvision.utils.make_grid`` plus class names and captions drawn with PIL.

Example::

    grid = save_labelled_grid(x, "samples.png", nrow=10, row_labels=classes)   # x [N, C, H, W] in [0, 1]
    writer.add_image("samples", grid, step)                                     # grid [3, H', W'] in [0, 1]
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid, save_image

_PAD = 2


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)     # scalable font (Pillow >= 10.1 with FreeType)
    except TypeError:
        return ImageFont.load_default()


def labelled_grid(images: torch.Tensor, nrow: int, *, row_labels: list[str] | None = None,
                  col_labels: list[str] | None = None, cell_captions: list[str] | None = None,
                  scale: int = 1, font_size: int = 11) -> torch.Tensor:
    """Grid of ``images`` with optional labels left of each row, above each column and under each cell.

    Args:
        images: [N, C, H, W] in [0, 1] (C = 1 or 3), laid out row by row, ``nrow`` per row.
        row_labels: one per grid row; col_labels: one per column; cell_captions: one per image.
        scale: integer upscaling of every image (nearest), so small images stay legible.
    Returns:
        [3, H', W'] float in [0, 1].
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError("images must be [N, 1 or 3, H, W]")
    x = images.detach().float().cpu().clamp(0, 1)
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    n, _, h, w = x.shape
    cap_h = font_size + 4 if cell_captions else 0
    if cell_captions:
        if len(cell_captions) != n:
            raise ValueError(f"{len(cell_captions)} captions for {n} images")
        x = F.pad(x, (0, 0, 0, cap_h), value=1.0)                          # white band under each cell
    grid = make_grid(x, nrow=nrow, padding=_PAD, pad_value=1.0)             # [3, Hg, Wg]
    if not (row_labels or col_labels or cell_captions):
        return grid
    return _draw_labels(grid, (h + cap_h, w), nrow, n, row_labels, col_labels, cell_captions, font_size)


def _draw_labels(grid: torch.Tensor, cell: tuple[int, int], nrow: int, n: int, row_labels, col_labels,
                 cell_captions, font_size: int) -> torch.Tensor:
    font = _font(font_size)
    ch, cw = cell
    left = 4 + max((_text_width(font, s) for s in row_labels), default=0) if row_labels else 0
    top = font_size + 6 if col_labels else 0
    img = Image.new("RGB", (grid.shape[2] + left, grid.shape[1] + top), "white")
    img.paste(Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy()), (left, top))
    draw = ImageDraw.Draw(img)
    cell_xy = lambda r, c: (left + _PAD + c * (cw + _PAD), top + _PAD + r * (ch + _PAD))
    for r, label in enumerate(row_labels or []):
        draw.text((2, cell_xy(r, 0)[1] + ch // 2), str(label), fill="black", font=font, anchor="lm")
    for c, label in enumerate(col_labels or []):
        draw.text((cell_xy(0, c)[0] + cw // 2, 2), str(label), fill="black", font=font, anchor="mt")
    for i, caption in enumerate(cell_captions or []):
        x0, y0 = cell_xy(i // nrow, i % nrow)
        text, small = _fit(str(caption), cw, font_size)
        draw.text((x0 + cw // 2, y0 + ch - 1), text, fill="black", font=small, anchor="mb")
    arr = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return arr.view(img.height, img.width, 3).permute(2, 0, 1).float().div(255)


def _fit(text: str, width: int, font_size: int, min_size: int = 8) -> tuple[str, ImageFont.ImageFont]:
    """``text`` and a font that fit in ``width`` pixels: a smaller font first (down to ``min_size``), then
    the end of the text cut with an ellipsis, so a caption never runs over its neighbours or the edge."""
    for size in range(font_size, min_size - 1, -1):
        font = _font(size)
        if _text_width(font, text) <= width:
            return text, font
    while len(text) > 1 and _text_width(font, text + "…") > width:
        text = text[:-1]
    return text + "…", font


def _text_width(font, text: str) -> int:
    x0, _, x1, _ = font.getbbox(str(text))
    return int(x1 - x0)


def save_labelled_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int, *,
                       row_labels: list[str] | None = None, col_labels: list[str] | None = None,
                       cell_captions: list[str] | None = None, scale: int = 1, font_size: int = 11) -> torch.Tensor:
    """Write the labelled grid of ``images`` [N, C, H, W] in [0, 1] as a PNG and return it ([3, H', W'])."""
    grid = labelled_grid(images, nrow, row_labels=row_labels, col_labels=col_labels,
                         cell_captions=cell_captions, scale=scale, font_size=font_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return grid


def save_comparison_grid(columns: list[torch.Tensor], path: str | os.PathLike, *, col_labels: list[str],
                         captions: list[list[str]], scale: int = 2, font_size: int = 11) -> torch.Tensor:
    """One row per example, one column per view (e.g. clean | adversarial | amplified perturbation).

    Args:
        columns: K tensors [N, C, H, W] in [0, 1]; column k of row i is ``columns[k][i]``.
        col_labels: K column titles; captions: K lists of N captions (e.g. true and predicted class).
    """
    n = columns[0].shape[0]
    images = torch.stack(columns, 1).flatten(0, 1)                       # [N*K, C, H, W], row-major
    cells = [captions[k][i] for i in range(n) for k in range(len(columns))]
    return save_labelled_grid(images, path, len(columns), col_labels=col_labels, cell_captions=cells,
                              scale=scale, font_size=font_size)


def amplify(delta: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Map a perturbation in [-radius, radius] to [0, 1] for display (grey = 0); ``radius`` may be one number
    or one per image ``[N]`` (each row of a grid on its own scale)."""
    r = torch.as_tensor(radius, dtype=delta.dtype, device=delta.device).clamp_min(1e-12)
    if r.dim() == 1:
        r = r.view(-1, *[1] * (delta.dim() - 1))
    return (0.5 + delta / (2 * r)).clamp(0, 1)

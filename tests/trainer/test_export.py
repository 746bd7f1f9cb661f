import csv
import os
import stat

import pytest
import torch
from PIL import Image

from trainer.export import ExportError, save_gif, save_grid, save_mosaic, write_history_csv
from trainer.loop import History


def test_grid_png_has_the_expected_size(tmp_path):
    p = save_grid(torch.rand(20, 1, 28, 28), tmp_path / "g.png", nrow=5, padding=2)
    with Image.open(p) as im:
        assert im.size == (5 * 30 + 2, 4 * 30 + 2)
    p = save_grid(torch.rand(9, 3, 8, 8), tmp_path / "s.png", nrow=3, padding=0, scale=4)
    with Image.open(p) as im:
        assert im.size == (96, 96) and im.mode == "RGB"


def test_mosaic_and_gif(tmp_path):
    p = save_mosaic(
        [torch.rand(4, 1, 10, 10)] * 3, tmp_path / "m.png", nrow=2, ncol_groups=3, gap=5
    )
    with Image.open(p) as im:
        assert im.size == (3 * (20 + 5) + 5, 20 + 10)
    g = save_gif(torch.rand(6, 1, 12, 12), tmp_path / "a.gif", scale=2)
    with Image.open(g) as im:
        assert im.size == (24, 24) and im.n_frames == 10  # 6 forward + 4 back
        assert im.info["loop"] == 0


def test_history_csv(tmp_path):
    h = History(
        steps=[
            dict(
                step=s,
                epoch=1,
                nelbo=10.0 - s,
                recon=8.0,
                kl=2.0,
                beta=1.0,
                lr=1e-3,
                images_per_second=100.0,
            )
            for s in (1, 2, 3)
        ],
        epochs=[
            dict(
                epoch=1,
                step=3,
                test_nelbo=7.5,
                test_recon=6.0,
                test_kl=1.5,
                train_nelbo=7.0,
                elapsed=1.0,
            )
        ],
    )
    p = write_history_csv(h, tmp_path / "h.csv")
    rows = list(csv.DictReader(p.open()))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[-1]["test_nelbo"] == "7.5" and rows[0]["test_nelbo"] == ""
    assert float(rows[0]["nelbo"]) == 9.0


def test_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = save_grid(torch.rand(4, 1, 8, 8), tmp_path / "g.png", nrow=2)
        c = write_history_csv(History(), tmp_path / "h.csv")
    finally:
        os.umask(old)
    for f in (p, c):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f  # not a temporary file's 0600


def test_bad_image_requests_are_clear(tmp_path):
    with pytest.raises(ExportError, match="unsupported image type '.txt'"):
        save_grid(torch.rand(4, 1, 8, 8), tmp_path / "g.txt", nrow=2)
    with pytest.raises(ExportError, match="would be .* pixels"):
        save_grid(torch.rand(4, 1, 28, 28), tmp_path / "big.png", nrow=4, scale=1000)
    with pytest.raises(ExportError, match="saved as .gif"):
        save_gif(torch.rand(3, 1, 8, 8), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []

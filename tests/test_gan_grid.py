"""tools/gan_grid.py: columns in order source | target mask | warped | generated | target, cells
upscaled in place under a header."""
from types import SimpleNamespace

import numpy as np

from _fixtures import load_tool
from fape.data.landmarks68 import template_face
from fape.gan.config import GANDataConfig


def _tool():
    return load_tool("gan_grid")


def test_grid_columns_and_layout():
    t = _tool()
    n, s = 2, 16
    # each column a constant grey level, so a cell's position says which array it came from
    arrays = {k: np.full((n, 3, s, s), v, np.uint8) for k, v in
              (("source", 10), ("warp", 30), ("fake", 40), ("target", 50))}
    lm = np.repeat(template_face(s)[None], n, 0).astype(np.float32)
    g = {**arrays, "target_landmarks": lm, "cfg": SimpleNamespace(data=GANDataConfig(image_size=s, mask_style="lines"))}
    rows = t.grid_cells(g)
    assert len(rows) == n and [c.shape for c in rows[0]] == [(s, s, 3)] * 5
    assert [int(c[0, 0, 0]) for c in rows[1] if c is not rows[1][1]] == [10, 30, 40, 50]
    assert rows[0][1].max() > 200 and rows[0][1].min() == 0  # the drawn pose mask
    img = t.assemble(rows, scale=2)
    h = 2 * s
    assert img.shape == (t.HEADER + n * (h + t.PAD), 5 * (h + t.PAD) - t.PAD, 3)
    for j, v in ((0, 10), (2, 30), (3, 40), (4, 50)):  # second row, column j: that array's level
        y, x = t.HEADER + (h + t.PAD) + h // 2, j * (h + t.PAD) + h // 2
        assert (img[y, x] == v).all()
    assert (img[t.HEADER // 2, :] < 255).any()  # the header's column names

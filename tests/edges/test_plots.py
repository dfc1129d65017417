"""Edge maps drawn for people: dark, widened lines on white that survive scaling to a page."""

import numpy as np
from PIL import Image

from thesis_jax import edges


def test_edge_picture_draws_thin_edges_black_and_wide_and_weak_ones_light():
    edge_map = np.zeros((40, 60), np.float32)
    edge_map[20, 5:55] = 0.2  # a thinned line that never reaches 1
    edge_map[5:35, 30] = 0.05  # a weaker one
    picture = edges.edge_picture(edge_map, line_width=3)
    assert picture.shape == edge_map.shape and picture.min() >= 0 and picture.max() <= 1
    np.testing.assert_allclose(picture[20, 5:55], 0.0, atol=1e-6)  # the strong edges: black
    np.testing.assert_allclose(picture[19:22, 10], 0.0, atol=1e-6)  # three pixels wide
    np.testing.assert_allclose(picture[10, 30], 0.75, atol=1e-6)  # a weak line stays light
    assert picture[0, 0] == 1.0 and picture[10, 10] == 1.0  # white elsewhere
    np.testing.assert_array_equal(edges.edge_picture(np.zeros((4, 4))), 1.0)  # no edges: white


def _readme_pages(tmp_path):
    """The shapes report's six-panel rows with a thin weak line, and with no edges, as the
    README shows them (880 pixels wide), in grey levels."""
    rng = np.random.default_rng(0)
    images = [rng.random((321, 481, 3)), rng.random((481, 321, 3))]
    pages = []
    for strength in (0.3, 0.0):
        maps = []
        for image in images:
            edge_map = np.zeros(image.shape[:2], np.float32)
            edge_map[100:102, 20:300] = [[strength], [strength / 2]]
            maps.append(edge_map)
        columns = {name: maps for name in ("truth", "a", "b", "c", "d")}
        path = edges.plot_edge_panels(images, columns, tmp_path / f"{strength}.png")
        page = Image.open(path).convert("L")
        pages.append(np.asarray(page.resize((880, round(880 * page.height / page.width)))))
    return pages


def test_panels_keep_thin_lines_visible_at_the_readmes_size(tmp_path):
    lined, blank = _readme_pages(tmp_path)
    darker = blank.astype(int) - lined.astype(int)  # only the line differs
    assert darker.max() > 180  # nearly black on white, not a light grey
    assert (darker > 100).sum() > 2 * 280 * 880 / 1560  # along the whole line, in every panel

"""Tortuosity indices and box-counting dimension on shapes with known answers."""

from __future__ import annotations

import numpy as np

from thtl_bench.data import tortuosity


def test_indices_known_shapes():
    t = np.linspace(0, 1, 200)
    line = np.stack([100 * t, 0 * t], 1)
    wave = np.stack([100 * t, 5 * np.sin(2 * np.pi * 4 * t)], 1)
    coil = np.stack([100 * t + 4 * np.cos(2 * np.pi * 12 * t), 4 * np.sin(2 * np.pi * 12 * t)], 1)
    ls, ws, cs = (tortuosity.indices(x) for x in (line, wave, coil))
    assert abs(ls["dm"] - 1) < 1e-6 and ls["soam"] < 1e-6 and abs(ls["length"] - 100) < 1.0
    assert ws["dm"] > 1.05 and tortuosity.inflection_count(wave) >= 6
    assert cs["soam"] > ws["soam"] > ls["soam"]
    half = np.stack([50 * np.cos(np.pi * t), 50 * np.sin(np.pi * t)], 1)  # a half circle: DM = pi / 2
    assert abs(tortuosity.indices(half)["dm"] - np.pi / 2) < 0.01
    assert tortuosity.indices_many([line, wave]) == [ls, ws]


def test_summary_is_length_weighted():
    s = tortuosity.summarise([{"dm": 1.0, "icm": 1.0, "soam": 0.0, "length": 30.0},
                              {"dm": 2.0, "icm": 3.0, "soam": 0.2, "length": 10.0}])
    assert abs(s["dm"] - 1.25) < 1e-6 and abs(s["soam"] - 0.05) < 1e-6 and s["length"] > 39.9
    assert tortuosity.summarise([])["dm"] == 1.0


def test_fractal_dimension_of_a_line_and_a_square():
    m = np.zeros((128, 128), bool)
    m[64, :] = True
    assert abs(tortuosity.fractal_dimension(m, (1, 2, 4, 8, 16, 32)) - 1) < 0.05
    assert abs(tortuosity.fractal_dimension(np.ones((128, 128)), (1, 2, 4, 8, 16, 32)) - 2) < 0.05

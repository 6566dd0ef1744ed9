"""The in-kernel probe's readers, on plain Python values (the kernel runs the same source)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grader.execute.extract import _classify, _layer_key, _per_layer, _to_float_array


@pytest.mark.parametrize("key, layer", [(0, 0), (35, 35), ("7", 7), ("layer_7", 7), ("Layer 7", 7), ("L7", 7),
                                        (np.int64(3), 3), (True, None), ("embed", None), (1.5, None)])
def test_layer_keys(key, layer):
    assert _layer_key(key) == layer


def test_tensors_tuples_and_arrays_become_float32():
    t = torch.ones(1, 4, 8, dtype=torch.bfloat16)
    arr, info = _to_float_array((t, None))
    assert arr.dtype == np.float32 and arr.shape == (1, 4, 8)
    assert info == {"dtype": "bfloat16", "wrapped_in": "tuple", "type": "torch"}
    arr, info = _to_float_array(np.zeros((3, 5), np.float64))
    assert arr.dtype == np.float32 and info["type"] == "numpy"
    assert _to_float_array(torch.arange(5)) is None  # token ids are not activations
    assert _to_float_array("text") is None


def test_per_layer_layouts():
    caps = {i: torch.randn(1, 10, 64) for i in range(36)}
    arrays, layout = _per_layer(caps, 36)
    assert layout == "dict" and sorted(arrays) == list(range(36))
    assert _classify(arrays, 64) == "captures"
    stacked, layout = _per_layer(np.random.randn(36, 3, 10), 36)
    assert layout == "stacked" and len(stacked) == 36 and _classify(stacked, 64) == "projections"
    listed, layout = _per_layer([np.random.randn(10, 3) for _ in range(36)], 36)
    assert layout == "list" and _classify(listed, 64) == "projections"
    one, _ = _per_layer(torch.randn(10, 64), 36)  # a single layer's matrix is not per-layer data
    assert one == {}


def test_classify_needs_the_hidden_size_and_two_layers():
    assert _classify({0: (np.zeros((10, 32)), {})}, 64) is None
    assert _classify({0: (np.zeros((10, 32)), {}), 1: (np.zeros((10, 32)), {})}, 64) is None
    assert _classify({0: (np.zeros((10, 32)), {}), 1: (np.zeros((10, 32)), {})}, None) == "captures"

"""InceptionV3 FID features with random weights at a small input; the weight file and torch conversion round trips."""

import jax
import numpy as np
import pytest
from flax import traverse_util

from ganjax.evaluation import inception

SMALL = inception.InceptionV3(resize=None)


@pytest.fixture(scope="module")
def variables():
    return inception.init_variables(jax.random.key(0), SMALL)


def test_variables_have_the_fid_layout(variables):
    keys = inception.weight_keys(variables)
    assert len(keys) == 94 * 5
    assert "params/Mixed_7c/branch_pool/conv/kernel" in keys
    assert "batch_stats/Conv2d_1a_3x3/bn/var" in keys
    assert variables["params"]["Conv2d_1a_3x3"]["conv"]["kernel"].shape == (3, 3, 3, 32)
    assert variables["params"]["Mixed_7c"]["branch_pool"]["conv"]["kernel"].shape == (1, 1, 2048, 192)


def test_pool3_features_of_grey_images(variables):
    images = jax.random.uniform(jax.random.key(1), (2, 75, 75, 1), minval=-1.0, maxval=1.0)
    features = np.asarray(inception.feature_fn(variables, SMALL)(images))
    assert features.shape == (2, inception.FEATURE_DIM)
    assert np.all(np.isfinite(features)) and np.all(features >= 0)  # means of ReLU outputs
    assert not np.allclose(features[0], features[1])


def test_too_small_input_is_refused(variables):
    with pytest.raises(ValueError, match="at least 75x75"):
        SMALL.apply(variables, np.zeros((1, 32, 32, 3), np.float32))


def test_weight_file_round_trip(variables, tmp_path):
    path = inception.save_weights(variables, tmp_path / "inception.npz")
    loaded = inception.load_weights(path, SMALL)
    flat, back = traverse_util.flatten_dict(variables), traverse_util.flatten_dict(loaded)
    assert flat.keys() == back.keys()
    for k in flat:
        np.testing.assert_array_equal(flat[k], back[k])


def test_bad_weight_files_are_named(variables, tmp_path):
    with pytest.raises(FileNotFoundError, match="pytorch-fid"):
        inception.load_weights(tmp_path / "missing.npz", SMALL)
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(variables).items()}
    flat["params/Conv2d_1a_3x3/conv/kernel"] = np.zeros((3, 3, 3, 16), np.float32)
    del flat["batch_stats/Mixed_5b/branch1x1/bn/mean"]
    np.savez(tmp_path / "bad.npz", **flat)
    with pytest.raises(ValueError, match=r"missing \['batch_stats/Mixed_5b/branch1x1/bn/mean'\].*Conv2d_1a_3x3"):
        inception.load_weights(tmp_path / "bad.npz", SMALL)


def test_convert_torch_state_dict(variables):
    """A pytorch-fid-style state dict (OIHW kernels, BN running stats, fc) converts to exactly our variables."""
    state = {"fc.weight": np.zeros((1008, 2048)), "fc.bias": np.zeros(1008)}
    torch_leaf = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    for (_, *module, leaf), value in traverse_util.flatten_dict(variables).items():
        value = np.asarray(value)
        if leaf == "kernel":
            state[".".join(module) + ".weight"] = np.transpose(value, (3, 2, 0, 1))
        else:
            state[".".join(module) + "." + torch_leaf[leaf]] = value
            state[".".join(module) + ".num_batches_tracked"] = np.array(0)
    converted = inception.convert_torch_state_dict(state)
    expected = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(variables).items()}
    assert converted.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(converted[k], expected[k])

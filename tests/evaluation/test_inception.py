"""InceptionV3 FID features with random weights at a small input; the weight file and torch conversion round trips.

The converter is tested on files written here in torch's own layouts (no torch needed):
:func:`torch_save` writes a state dict as ``torch.save`` does, in its zip format or its legacy stream.
"""

import collections
import io
import os
import pickle
import sys
import types
import zipfile
from unittest import mock

import jax
import numpy as np
import pytest
from flax import traverse_util

from ganjax.evaluation import inception, torch_files

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


# ----------------------------------------------------------------------------- torch.save, written without torch

LEGACY_MAGIC, LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


class Storage:
    """A flat torch storage: its type's name (``FloatStorage``), key and elements."""

    def __init__(self, type_name: str, key: str, data: np.ndarray):
        self.type_name, self.key, self.data = type_name, key, data.ravel()


class Tensor:
    """Pickles as torch does: ``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""

    def __init__(self, storage: Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


def contiguous(storage_key: str, array: np.ndarray) -> Tensor:
    """A tensor owning its storage, in C order."""
    array = np.ascontiguousarray(array)
    type_name = {np.float32: "FloatStorage", np.int64: "LongStorage"}[array.dtype.type]
    strides = tuple(s // array.itemsize for s in array.strides)
    return Tensor(Storage(type_name, storage_key, array), 0, array.shape, strides)


def fake_torch() -> dict[str, types.ModuleType]:
    """``torch`` and ``torch._utils`` with just the names a state dict's pickle refers to."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled here")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    return {"torch": torch, "torch._utils": utils}


def torch_save(tensors: dict[str, Tensor], path, legacy: bool = False) -> None:
    """Writes ``tensors`` as ``torch.save(state_dict, path)`` does (protocol 2), zipped or in the legacy stream."""
    modules = fake_torch()
    state = collections.OrderedDict(tensors)
    state._metadata = collections.OrderedDict({"": {"version": 1}})  # as Module.state_dict() sets it
    storages = {t.storage.key: t.storage for t in tensors.values()}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if not isinstance(obj, Storage):
                return None
            pid = ("storage", getattr(modules["torch"], obj.type_name), obj.key, "cpu", obj.data.size)
            return pid + (None,) if legacy else pid  # the legacy id ends with its view metadata

    with mock.patch.dict(sys.modules, modules):
        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(state)
    if legacy:
        with open(path, "wb") as f:
            for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": LEGACY_PROTOCOL, "little_endian": True}):
                pickle.dump(header, f, protocol=2)
            f.write(buffer.getvalue())
            pickle.dump(list(storages), f, protocol=2)
            for storage in storages.values():
                f.write(np.int64(storage.data.size).tobytes() + storage.data.tobytes())
        return
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, storage in storages.items():
            archive.writestr(f"archive/data/{key}", storage.data.tobytes())
        archive.writestr("archive/version", "3\n")


@pytest.fixture(scope="module")
def fid_state_dict(variables):
    """pytorch-fid's state dict (FIDInceptionA/C/E: torchvision names and shapes, OIHW kernels, the 1008-way fc, BN
    running statistics and counters), filled with the random variables."""
    state = {}
    torch_leaf = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    for (_, *module, leaf), value in sorted(traverse_util.flatten_dict(variables).items()):
        value = np.asarray(value, np.float32)
        if leaf == "kernel":
            state[".".join(module) + ".weight"] = np.transpose(value, (3, 2, 0, 1))
        else:
            state[".".join(module) + "." + torch_leaf[leaf]] = value
            state[".".join(module) + ".num_batches_tracked"] = np.array(0, np.int64)
    rng = np.random.default_rng(0)
    state["fc.weight"] = rng.normal(size=(1008, 2048)).astype(np.float32)
    state["fc.bias"] = rng.normal(size=1008).astype(np.float32)
    return state


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pytorch_fid_file_converts_loads_and_runs(fid_state_dict, tmp_path, legacy):
    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch_save({name: contiguous(str(i), a) for i, (name, a) in enumerate(fid_state_dict.items())}, pth, legacy)
    npz = inception.main(["convert", str(pth), str(tmp_path / "inception_fid.npz")])
    assert npz == tmp_path / "inception_fid.npz"
    loaded = inception.load_weights(npz, SMALL)
    direct = inception.convert_torch_state_dict(fid_state_dict)
    flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(loaded).items()}
    assert flat.keys() == direct.keys()
    for k in direct:
        np.testing.assert_array_equal(flat[k], direct[k], err_msg=k)
    apply = jax.jit(SMALL.apply)
    images = jax.random.uniform(jax.random.key(2), (2, 75, 75, 3), minval=-1.0, maxval=1.0)
    features = np.asarray(apply(loaded, images))
    assert features.shape == (2, inception.FEATURE_DIM) and np.all(np.isfinite(features))
    expected = apply(traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in direct.items()}), images)
    np.testing.assert_array_equal(features, np.asarray(expected))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_reader_follows_offsets_strides_and_shared_storages(tmp_path, legacy):
    shared = Storage("FloatStorage", "0", np.arange(12, dtype=np.float32))
    tensors = {
        "whole": Tensor(shared, 0, (3, 4), (4, 1)),
        "transposed": Tensor(shared, 0, (4, 3), (1, 4)),
        "tail": Tensor(shared, 6, (2, 3), (3, 1)),
        "scalar": contiguous("1", np.array(7, np.int64)),
    }
    torch_save(tensors, tmp_path / "views.pth", legacy)
    state = torch_files.read_torch_state_dict(tmp_path / "views.pth")
    whole = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(state["whole"], whole)
    np.testing.assert_array_equal(state["transposed"], whole.T)
    np.testing.assert_array_equal(state["tail"], np.arange(6, 12, dtype=np.float32).reshape(2, 3))
    assert state["scalar"].dtype == np.int64 and state["scalar"] == 7


def test_torch_reader_refuses_anything_but_tensors(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": os.system}, protocol=2))
    with pytest.raises(ValueError, match=r"evil.pth: .*system is not part of a state dict of tensors"):
        torch_files.read_torch_state_dict(tmp_path / "evil.pth")
    (tmp_path / "text.pth").write_text("not a torch file")
    with pytest.raises(ValueError, match="text.pth: cannot read it as a torch state dict"):
        torch_files.read_torch_state_dict(tmp_path / "text.pth")
    torch_save({"conv.weight": contiguous("0", np.zeros((2, 3), np.float32))}, tmp_path / "other.pth")
    with pytest.raises(SystemExit, match=r"error: .*other.pth: .*conv.weight \(2, 3\): not a parameter of pytorch-fid"):
        inception.main(["convert", str(tmp_path / "other.pth"), str(tmp_path / "out.npz")])
    assert not (tmp_path / "out.npz").exists()
    with pytest.raises(SystemExit, match="error: .*missing.pth: no such file; download it from https://github.com"):
        inception.main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out.npz")])

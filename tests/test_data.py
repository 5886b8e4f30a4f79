"""ganjax.data: real MNIST IDX files, image folders, TFDS, batching and every bad-input error."""

import gzip
import shutil

import numpy as np
import pytest
from PIL import Image

from ganjax import data

MNIST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_idx_loads_real_digits(mnist):
    assert mnist.images.shape == (10000, 28, 28, 1)
    assert mnist.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(mnist.labels), MNIST_CLASS_COUNTS)
    assert mnist.images.max() == 255 and mnist.images.min() == 0


@pytest.mark.parametrize("source", [data.PACKAGED_MNIST, str(data.PACKAGED_MNIST)], ids=["path", "str"])
def test_the_packaged_digits_load_from_their_path_or_its_name(source, mnist):
    loaded = data.load(source)
    np.testing.assert_array_equal(loaded.images, mnist.images)
    np.testing.assert_array_equal(loaded.labels, mnist.labels)
    assert data.native_shape(source) == (28, 1)
    assert data.native_count(source) == len(mnist.images) == 10_000


def test_raw_idx_equals_gz(mnist_dir, tmp_path, mnist):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(mnist_dir / f"{name}.gz") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    raw = data.load_idx_folder(tmp_path)
    np.testing.assert_array_equal(raw.images, mnist.images)
    np.testing.assert_array_equal(raw.labels, mnist.labels)


def test_load_picks_the_split_prefix(mnist_dir, mnist):
    assert len(data.load(str(mnist_dir))) == 10000  # no split named: the folder's only one
    assert len(data.load(str(mnist_dir), split="t10k")) == 10000
    with pytest.raises(
        data.DataError, match="no 't10kk\\*images-idx3-ubyte\\[.gz\\]' file .*t10k-images-idx3-ubyte.gz"
    ):
        data.load(str(mnist_dir), split="t10kk")


def test_float_range_and_roundtrip(mnist):
    x = data.to_float(mnist.images[:64])
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(data.to_uint8(x), mnist.images[:64])


def test_batches_fixed_size_reproducible_and_reshuffled(mnist):
    small = data.ImageDataset(mnist.images[:100], mnist.labels[:100], "small")
    batcher = data.Batcher(small, 32, seed=7)
    assert batcher.steps_per_epoch == 3
    epoch0 = np.concatenate([batcher.indices(s) for s in range(3)])
    epoch1 = np.concatenate([batcher.indices(s) for s in range(3, 6)])
    assert len(set(epoch0)) == 96  # no repeats within an epoch, partial batch dropped
    assert not np.array_equal(epoch0, epoch1)  # reshuffled every epoch
    again = data.Batcher(small, 32, seed=7)
    for step in (0, 4, 11):
        a, b = batcher.batch(step), again.batch(step)
        np.testing.assert_array_equal(a["image"], b["image"])
        assert a["image"].shape == (32, 28, 28, 1) and a["label"].shape == (32,)
    assert not np.array_equal(batcher.indices(0), data.Batcher(small, 32, seed=8).indices(0))


def test_prefetching_iterator_matches_batch(mnist):
    batcher = data.Batcher(mnist, 16, seed=1)
    it = batcher.iterate(start_step=5)
    for step in range(5, 9):
        np.testing.assert_array_equal(next(it)["image"], batcher.batch(step)["image"])
    it.close()


def test_batch_size_larger_than_dataset():
    ds = data.ImageDataset(np.zeros((4, 2, 2, 1), np.uint8), name="tiny")
    with pytest.raises(data.DataError, match="tiny: holds 4 examples, too few for batches of 8"):
        data.Batcher(ds, 8, 0)


def _write_idx(path, magic, array, truncate=0):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(payload[: len(payload) - truncate])


def test_missing_folder(tmp_path):
    with pytest.raises(data.DataError, match="nope: data folder not found"):
        data.load_idx_folder(tmp_path / "nope")


def test_folder_without_idx(tmp_path):
    with pytest.raises(data.DataError, match="no .*images-idx3-ubyte"):
        data.load_idx_folder(tmp_path)


def test_wrong_magic(tmp_path):
    _write_idx(tmp_path / "x-images-idx3-ubyte", 2049, np.zeros((2, 3, 3)))
    with pytest.raises(data.DataError, match="x-images-idx3-ubyte: wrong IDX magic number 2049, expected 2051"):
        data.load_idx_folder(tmp_path)


def test_truncated_file(tmp_path):
    _write_idx(tmp_path / "x-images-idx3-ubyte", 2051, np.zeros((2, 3, 3)), truncate=5)
    with pytest.raises(data.DataError, match="x-images-idx3-ubyte: truncated IDX file"):
        data.load_idx_folder(tmp_path)


def test_corrupt_gzip(tmp_path):
    (tmp_path / "x-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(data.DataError, match="x-images-idx3-ubyte.gz: cannot read IDX file"):
        data.load_idx_folder(tmp_path)


def test_label_count_mismatch(tmp_path):
    _write_idx(tmp_path / "x-images-idx3-ubyte", 2051, np.zeros((3, 2, 2)))
    _write_idx(tmp_path / "x-labels-idx1-ubyte", 2049, np.zeros((2,)))
    with pytest.raises(data.DataError, match="x-labels-idx1-ubyte: 2 labels but x-images-idx3-ubyte holds 3 images"):
        data.load_idx_folder(tmp_path)


def test_image_folder_resizes_and_scales(tmp_path):
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (16, 16), (0, 0, 255)).save(tmp_path / "sub" / "b.jpg")
    ds = data.load_image_folder(tmp_path, size=8)
    assert ds.images.shape == (2, 8, 8, 3)
    x = data.to_float(ds.images)
    np.testing.assert_allclose(x[0, ..., 0], 1.0)
    np.testing.assert_allclose(x[0, ..., 2], -1.0)
    assert np.all(x[1, ..., 2] > 0.9)
    assert data.load_image_folder(tmp_path, size=8, channels=1).images.shape == (2, 8, 8, 1)


def test_empty_image_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("no images")
    with pytest.raises(data.DataError, match="no images in the folder \\(Pillow reads "):
        data.load_image_folder(tmp_path, size=8)


def test_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(data.DataError, match="broken.png: unreadable image"):
        data.load_image_folder(tmp_path, size=8)


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".tiff", ".gif", ".png"])
def test_every_format_pillow_reads_is_an_image_and_the_shape_is_the_images_own(tmp_path, suffix):
    for i in range(3):
        Image.new("RGB", (24, 20), (10 * i, 0, 200)).save(tmp_path / f"{i}{suffix}")
    assert data.native_shape(str(tmp_path)) == (20, 3)
    assert data.native_count(str(tmp_path)) == 3
    assert data.load(str(tmp_path)).images.shape == (3, 20, 20, 3)
    Image.new("L", (12, 12)).save(tmp_path / f"0{suffix}")  # the first image decides
    assert data.native_shape(str(tmp_path)) == (12, 1 if suffix in (".bmp", ".tiff", ".png") else 3)


def test_subfolders_label_the_images_and_progress_is_shown(tmp_path):
    for name, count in (("dogs", 2), ("cats", 3)):
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{i}.png")
    seen = []
    ds = data.load(str(tmp_path), folder_labels=True, progress=lambda paths: (seen.append(p) or p for p in paths))
    assert ds.class_names == ("cats", "dogs") and ds.labels.tolist() == [0, 0, 0, 1, 1] and len(seen) == 5
    assert data.load(str(tmp_path)).labels is None
    Image.new("RGB", (8, 8)).save(tmp_path / "loose.png")
    with pytest.raises(data.DataError, match="loose.png: labels come from subfolders, but this image is in none"):
        data.load(str(tmp_path), folder_labels=True)


def test_tfds_mock_data(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data.tfds, "_online", lambda: True)  # the mock stands in for the download
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = data.load("tfds:mnist", split="train")
    assert ds.images.shape == (12, 28, 28, 1) and ds.labels.shape == (12,)
    assert ds.name == "tfds:mnist[train]"


def test_an_idx_file_of_no_images_is_named(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", 2051, np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte: holds no images"):
        data.load(str(tmp_path))


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda p: None, "missing: data folder not found"),
        (lambda p: p.write_text("x"), "missing: not a folder"),
        (lambda p: p.mkdir(), "missing: no images in the folder"),
    ],
)
def test_a_bad_data_folder_is_named(tmp_path, make, error):
    make(tmp_path / "missing")
    with pytest.raises(data.DataError, match=error):
        data.load(str(tmp_path / "missing"), image_size=28)


def test_a_misspelt_tfds_name_suggests_the_closest_names():
    with pytest.raises(data.DataError, match="tfds:mnistt: TFDS has no dataset of that name; did you mean mnist, "):
        data.load("tfds:mnistt")


@pytest.mark.parametrize(
    "download, error", [(True, "and there is no network to download it: "), (False, "and downloading is off: ")]
)
def test_an_unprepared_tfds_dataset_offline_says_how_to_prepare_it(tmp_path, monkeypatch, download, error):
    monkeypatch.setattr(data.tfds, "_online", lambda: False)
    with pytest.raises(data.DataError, match=f"tfds:mnist is not prepared in {tmp_path}.*{error}.*or pass --data.dir"):
        data.load_tfds("mnist", data_dir=str(tmp_path), download=download)

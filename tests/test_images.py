"""Sample grids, their captions, and labelled animated GIFs."""

import numpy as np
import pytest
from PIL import Image, ImageSequence

from ganjax import images


def random_images(seed: int, n: int = 4, channels: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 8, 8, channels))


def gif_frames(path) -> list[np.ndarray]:
    return [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(Image.open(path))]


def test_save_grid_without_a_caption_is_the_upscaled_grid(tmp_path):
    x = random_images(0)
    png = images.save_grid(x, tmp_path / "g.png", nrow=2, scale=2)
    expected = images.make_grid(x, nrow=2)[..., 0].repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), expected)


@pytest.mark.parametrize("channels", [1, 3])
def test_save_grid_writes_a_caption_below_the_unchanged_grid(tmp_path, channels):
    x = random_images(0, n=6, channels=channels)
    plain = np.asarray(Image.open(images.save_grid(x, tmp_path / "plain.png", nrow=3, scale=2)))
    caption = "rows: great-circle paths between 3 anchors (slerp)"
    short = np.asarray(Image.open(images.save_grid(x, tmp_path / "c.png", nrow=3, scale=2, caption="slerp")))
    wrapped = np.asarray(Image.open(images.save_grid(x, tmp_path / "w.png", nrow=3, scale=2, caption=caption)))
    for captioned in (short, wrapped):
        assert captioned.shape[1] == plain.shape[1] and captioned.shape[0] > plain.shape[0]
        np.testing.assert_array_equal(captioned[: plain.shape[0]], plain)
        assert captioned[plain.shape[0] :].max() > 128  # text on the strip
    assert wrapped.shape[0] > short.shape[0]  # the long caption wraps to the 56-pixel grid width


def test_save_gif_labels_each_frame_on_a_strip_above_it(tmp_path):
    frames = [images.save_grid(random_images(seed), tmp_path / f"step_{seed}.png", scale=4) for seed in range(3)]
    plain = gif_frames(images.save_gif(frames, tmp_path / "plain.gif"))
    labels = [f"step {1200 * i}" for i in range(3)]
    labelled = gif_frames(images.save_gif(frames, tmp_path / "labelled.gif", labels=labels))
    assert len(labelled) == len(plain) == 3
    strip = labelled[0].shape[0] - plain[0].shape[0]
    assert strip > 0 and labelled[0].shape[1] == plain[0].shape[1]
    for with_label, without in zip(labelled, plain, strict=True):
        np.testing.assert_array_equal(with_label[strip:], without)
        assert with_label[:strip].max() > 128  # text on the strip
    assert not np.array_equal(labelled[0][:strip], labelled[1][:strip])  # each frame its own label


def test_save_gif_refuses_a_label_count_that_differs_from_the_frames(tmp_path):
    frames = [images.save_grid(random_images(0), tmp_path / "f.png")]
    with pytest.raises(ValueError, match="2 labels for 1 frames"):
        images.save_gif(frames, tmp_path / "a.gif", labels=["a", "b"])

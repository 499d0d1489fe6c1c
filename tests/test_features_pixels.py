"""The batched torch image path gives the pixels the backbone's own processor gives."""

import numpy as np
import pytest
import torch
from PIL import Image

from affectpipe.features.backbones import default_processor, real_size_config, tiny_config
from affectpipe.features.pixels import ImagePixels, TensorImageProcessor, center_crop


def _photos(shape: tuple[int, int], n: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Smooth RGB images (upsampled noise), the kind of content resizing is made for."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return [np.asarray(Image.fromarray(s).resize(shape[::-1], Image.BICUBIC)) for s in small]


def _reference(kind: str, processor, images: list[np.ndarray]) -> torch.Tensor:
    if kind == "clip":
        return processor(images=images, return_tensors="pt")["pixel_values"]
    return processor([images], return_tensors="pt")["pixel_values"][0]


@pytest.mark.parametrize("kind", ["clip", "videomae"])
def test_images_at_the_input_size_match_the_processor_to_float_rounding(kind):
    processor = default_processor(kind, real_size_config(kind))
    images = _photos((224, 224))
    ours = ImagePixels(kind, processor)(torch.from_numpy(np.stack(images)))
    torch.testing.assert_close(ours, _reference(kind, processor, images), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["clip", "videomae"])
@pytest.mark.parametrize("shape", [(112, 112), (80, 100), (240, 320), (48, 48)])
def test_resized_images_match_the_processor_within_one_grey_level(kind, shape):
    processor = default_processor(kind, tiny_config(kind))
    images = _photos(shape)
    ours = ImagePixels(kind, processor)(images)
    ref = _reference(kind, processor, images)
    assert ours.shape == ref.shape == (3, 3, 64, 64)
    # torch's antialiased resize and PIL's agree to the uint8 rounding: one grey level when
    # shrinking, two when enlarging, in units of the normalisation's std
    level = 1 / 255 / min(processor.image_std)
    assert (ours - ref).abs().max() <= 2 * level + 1e-6
    assert (ours - ref).abs().mean() < 0.25 * level


def test_a_batch_of_mixed_sizes_keeps_its_order():
    processor = default_processor("clip", tiny_config("clip"))
    pixels = ImagePixels("clip", processor)
    images = [*_photos((64, 64), 2, seed=1), *_photos((96, 128), 1, seed=2), *_photos((64, 64), 1)]
    mixed = pixels(images)
    one_by_one = torch.cat([pixels([im]) for im in images])
    torch.testing.assert_close(mixed, one_by_one)


def test_center_crop_pads_a_side_shorter_than_the_crop():
    x = torch.ones(1, 3, 4, 10, dtype=torch.uint8)
    out = center_crop(x, (6, 6))
    assert out.shape == (1, 3, 6, 6)
    assert out[0, 0, :, 0].tolist() == [0, 1, 1, 1, 1, 0]  # one row of zeros above and below


def test_a_processor_setting_outside_the_torch_steps_runs_the_processor_itself():
    processor = default_processor("clip", tiny_config("clip"))
    processor.resample = Image.LANCZOS
    assert TensorImageProcessor.from_processor(processor) is None
    pixels = ImagePixels("clip", processor)
    images = _photos((100, 80))
    assert torch.equal(pixels(images), _reference("clip", processor, images))
    assert "per image" in pixels.describe()


def test_non_rgb_uint8_input_is_refused_by_shape():
    pixels = ImagePixels("clip", default_processor("clip", tiny_config("clip")))
    with pytest.raises(ValueError, match="uint8"):
        pixels(torch.zeros(2, 64, 64, 4, dtype=torch.uint8))

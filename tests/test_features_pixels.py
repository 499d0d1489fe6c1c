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
    # shrinking, two when enlarging (in units of the normalisation's std), rarely
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


@pytest.mark.parametrize(("height", "width"), [(4, 10), (3, 9), (9, 3), (2, 2)])
def test_center_crop_pads_like_the_processor_when_the_image_is_smaller(height, width):
    from transformers.image_transforms import center_crop as hf_center_crop

    x = torch.arange(1, 1 + 3 * height * width, dtype=torch.int32).reshape(1, 3, height, width)
    ours = center_crop(x, (7, 6))
    ref = hf_center_crop(x[0].numpy(), (7, 6), input_data_format="channels_first")
    assert ours.shape == (1, 3, 7, 6)
    np.testing.assert_array_equal(ours[0].numpy(), ref)


def test_crop_larger_than_the_image_matches_the_processor():
    processor = default_processor("clip", tiny_config("clip"))
    processor.do_resize = False  # 48 px images, 64 px crop: padded
    images = _photos((48, 51))
    ours = ImagePixels("clip", processor)(images)
    torch.testing.assert_close(ours, _reference("clip", processor, images), atol=1e-5, rtol=0)


def test_one_mean_and_std_for_all_channels_is_taken():
    processor = default_processor("clip", tiny_config("clip"))
    processor.image_mean, processor.image_std = 0.5, 0.25
    images = _photos((64, 64))
    ours = ImagePixels("clip", processor)(images)
    torch.testing.assert_close(ours, _reference("clip", processor, images), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["clip", "videomae"])
def test_a_processor_setting_outside_the_torch_steps_runs_the_processor_itself(kind):
    processor = default_processor(kind, tiny_config(kind))
    processor.resample = Image.LANCZOS
    assert TensorImageProcessor.from_processor(processor) is None
    pixels = ImagePixels(kind, processor)
    images = _photos((100, 80))
    expected = _reference(kind, processor, images)
    assert torch.equal(pixels(images), expected)
    assert torch.equal(pixels(torch.from_numpy(np.stack(images))), expected)  # as extract passes
    assert "per image" in pixels.describe()


def test_non_rgb_uint8_input_is_refused_by_shape():
    pixels = ImagePixels("clip", default_processor("clip", tiny_config("clip")))
    with pytest.raises(ValueError, match="uint8"):
        pixels(torch.zeros(2, 64, 64, 4, dtype=torch.uint8))

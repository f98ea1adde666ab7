"""Preprocess modes: output sizes, determinism, identical A/B geometry, errors."""

import numpy as np
import pytest
import tensorflow as tf

from p2p_jax.data import preprocess
from p2p_jax.errors import DataError

H, W = 40, 60  # Non-square input.


def _pair(h=H, w=W):
  rng = np.random.default_rng(0)
  gray = rng.random((h, w, 1), np.float32)
  # B carries A's pixels in every channel, so any geometric mismatch between sides shows.
  return tf.constant(gray), tf.constant(np.repeat(gray, 3, axis=-1))


def _run(mode, train, seed=(1, 2), h=H, w=W, **kw):
  a, b = _pair(h, w)
  args = dict(mode=mode, load_size=36, crop_size=32, flip=True, train=train,
              seed=tf.constant(seed, tf.int64))
  args.update(kw)
  x, y = preprocess.preprocess_pair(a, b, **args)
  return x.numpy(), y.numpy()


@pytest.mark.parametrize('mode', preprocess.MODES)
@pytest.mark.parametrize('train', [True, False])
def test_output_size_channels_range_and_same_geometry(mode, train):
  x, y = _run(mode, train)
  expect = preprocess.output_size(mode, H, W, load_size=36, crop_size=32, train=train)
  assert x.shape == (*expect, 1) and y.shape == (*expect, 3)
  assert x.min() >= 0.0 and x.max() <= 1.0
  np.testing.assert_allclose(y[..., :1], x, atol=1e-6)  # Same crop/resize/flip on A and B.
  np.testing.assert_allclose(y[..., 2:], x, atol=1e-6)


def test_sizes_per_mode():
  size = lambda m, **kw: preprocess.output_size(m, 40, 60, load_size=36, crop_size=32, **kw)
  assert size('resize_and_crop') == (32, 32)
  assert size('crop') == (32, 32)
  assert size('scale_width_and_crop') == (32, 32)
  assert size('scale_width') == (32, 36)  # max(36 * 40 / 60, 32) = 32 high, 36 wide.
  assert size('none') == (40, 60)
  # Nearest multiples (ties to even, as Python's round in the reference): 40 -> 32, 60 -> 64.
  assert size('none', size_multiple=16) == (32, 64)
  assert size('none', size_multiple=8) == (40, 64)
  assert preprocess.output_size('scale_width', 300, 200, load_size=64, crop_size=32,
                                size_multiple=32) == (96, 64)  # 96 = round(96/32)*32.


@pytest.mark.parametrize('mode,multiple', [('none', 16), ('scale_width', 16)])
def test_size_multiple_resizes(mode, multiple):
  x, _ = _run(mode, train=False, size_multiple=multiple)
  assert x.shape[0] % multiple == 0  # scale_width: the width is load_size, as given.
  assert x.shape[1] % multiple == 0 or (mode == 'scale_width' and x.shape[1] == 36)
  assert x.shape[:2] == preprocess.output_size(mode, H, W, load_size=36, crop_size=32,
                                               size_multiple=multiple)


def test_none_mode_keeps_pixels():
  a, _ = _pair()
  x, _ = _run('none', train=False)
  np.testing.assert_allclose(x, a.numpy())


def test_deterministic_for_a_seed_and_varies_across_seeds():
  for mode in ('resize_and_crop', 'crop', 'scale_width_and_crop'):
    x1, _ = _run(mode, True, seed=(3, 4))
    x2, _ = _run(mode, True, seed=(3, 4))
    np.testing.assert_array_equal(x1, x2)
    outs = {_run(mode, True, seed=(s, 0))[0].tobytes() for s in range(6)}
    assert len(outs) > 1, mode


def test_eval_is_deterministic_without_seed():
  a, b = _pair()
  for mode in preprocess.MODES:
    x1, _ = preprocess.preprocess_pair(a, b, mode=mode, load_size=36, crop_size=32, flip=True,
                                       train=False)
    x2, _ = preprocess.preprocess_pair(a, b, mode=mode, load_size=36, crop_size=32, flip=True,
                                       train=False)
    np.testing.assert_array_equal(x1.numpy(), x2.numpy())


def test_crop_eval_is_center_crop():
  a, _ = _pair()
  x, _ = _run('crop', train=False)
  np.testing.assert_array_equal(x, a.numpy()[4:36, 14:46])


def test_flip_only_when_asked():
  a, _ = _pair()
  # 'none' leaves the geometry alone, so the output is the input or its mirror image.
  outs = [_run('none', True, seed=(s, 1))[0] for s in range(8)]
  flipped = [np.array_equal(o, a.numpy()[:, ::-1]) for o in outs]
  assert any(flipped) and not all(flipped)
  for s in range(4):
    x, _ = _run('none', True, seed=(s, 1), flip=False)
    np.testing.assert_array_equal(x, a.numpy())


def test_crop_smaller_than_image_fails_in_graph_and_check_sizes_names_it():
  with pytest.raises(tf.errors.InvalidArgumentError, match='smaller than the 32x32 crop'):
    _run('crop', True, h=20, w=60)
  with pytest.raises(DataError, match=r"'dir/x.png'.*60x20.*smaller than the 32x32 crop"):
    preprocess.check_sizes('crop', 32, [('dir/ok.png', 40, 40), ('dir/x.png', 20, 60)])
  preprocess.check_sizes('resize_and_crop', 32, [('dir/x.png', 20, 60)])  # Resizes first.


def test_validate_errors():
  with pytest.raises(DataError, match="Unknown data.preprocess mode 'zoom'"):
    preprocess.validate('zoom', 36, 32)
  with pytest.raises(DataError, match='load_size .30. is smaller than the crop size'):
    preprocess.validate('resize_and_crop', 30, 32)
  preprocess.validate('crop', 0, 32)  # load_size unused by 'crop'.
  with pytest.raises(ValueError, match='needs a stateless seed'):
    a, b = _pair()
    preprocess.preprocess_pair(a, b, mode='crop', load_size=36, crop_size=32, flip=False,
                               train=True)


def test_works_inside_tf_function_with_dynamic_shapes():
  @tf.function(input_signature=[tf.TensorSpec([None, None, 1]), tf.TensorSpec([None, None, 3]),
                                tf.TensorSpec([2], tf.int64)])
  def f(a, b, seed):
    return preprocess.preprocess_pair(a, b, mode='scale_width_and_crop', load_size=36,
                                      crop_size=32, flip=True, train=True, seed=seed)
  a, b = _pair()
  x, y = f(a, b, tf.constant([5, 6], tf.int64))
  assert x.shape == (32, 32, 1) and y.shape == (32, 32, 3)


# --------------------------------------------------------------------------- one resize


def test_a_sampled_image_is_resized_exactly_as_the_eval_split(tmp_path):
  """Sampling a folder (pipeline.image_input) prepares an image as the eval pipeline
  prepares the same image in a dataset: the training resize (bicubic, antialiased)."""
  from PIL import Image

  from conftest import tiny_config
  from p2p_jax.data import pipeline, sources

  rng = np.random.default_rng(3)
  photo = rng.integers(0, 256, (40, 60, 3), np.uint8)
  for side, x in (('A', photo), ('B', photo[..., :1].repeat(3, -1))):
    (tmp_path / 'test' / side).mkdir(parents=True)
    Image.fromarray(x).save(tmp_path / 'test' / side / 'p.png')
  c = tiny_config(**{'data.dataset': 'custom', 'data.data_path': str(tmp_path),
                     'data.direction': 'AtoB', 'data.eval_split': 'test',
                     'data.train_split': 'test', 'data.preprocess': 'resize_and_crop'})
  batch = next(pipeline.eval_batches(c, 1, source=sources.get_source(c)))
  sampled = pipeline.image_input(tmp_path / 'test' / 'A' / 'p.png', c.image_size, 3)
  assert sampled.shape == batch['input'][0].shape == (32, 32, 3)
  np.testing.assert_allclose(sampled, batch['input'][0], atol=1e-6)
  # The same array, a PIL image or a path give the same input.
  np.testing.assert_array_equal(pipeline.image_input(photo, 32, 3), sampled)
  # Not the bilinear resize sampling used before (the test can tell them apart).
  bilinear = np.asarray(Image.fromarray(photo).resize((32, 32), Image.BILINEAR),
                        np.float32) / 127.5 - 1.0
  assert np.abs(bilinear - sampled).max() > 0.05

"""The procedural facades (dataset 'embedded') as a TFDS-backed PairedSource."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from p2p_jax.data import facade_labels, procedural_dataset, procedural_facades, sources
from p2p_jax.errors import DataError

RES, N_TRAIN, N_TEST = 32, 7, 3


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='module')
def source(data_dir):
  return procedural_dataset.ProceduralSource(RES, N_TRAIN, N_TEST, data_dir=data_dir)


def _read(ds):
  return [{k: v.numpy() for k, v in ex.items()} for ex in ds]


def test_registered_factory_reads_config(data_dir):
  c = tiny_config()
  c.data.dataset = 'embedded'
  c.data.data_dir = data_dir
  c.data.embedded_resolution = RES
  c.data.embedded_num_train = N_TRAIN
  c.data.embedded_num_test = N_TEST
  c.seed = 123  # The training seed must not change the data.
  src = sources.get_source(c)
  assert isinstance(src, procedural_dataset.ProceduralSource)
  assert src.name == 'embedded' and src.channels_a == 3 and src.channels_b == 3
  assert src.config.seed == procedural_dataset.DEFAULT_SEED
  assert src.config.name == procedural_dataset.config_name(RES, N_TRAIN, N_TEST, 0)
  assert sources.io_channels(c, src) == sources.Channels(3, 3)
  c.data.embedded_num_train = 0
  with pytest.raises(DataError):
    sources.get_source(c)


def test_examples_match_generator(source):
  assert source.num_examples('train') == N_TRAIN
  assert source.num_examples('test') == N_TEST
  ds = source.as_dataset('test')
  spec = ds.element_spec
  assert spec['A'].dtype == tf.uint8 and spec['B'].dtype == tf.uint8
  assert spec['name'].dtype == tf.string
  exs = _read(ds)
  assert len(exs) == N_TEST
  for ex in exs:
    assert ex['A'].shape == ex['B'].shape == (RES, RES, 3)
    name = ex['name'].decode()
    i = int(name.split('_')[1])
    photo, labels, cm = procedural_facades.generate_pair(
        procedural_facades.split_seed('test', i), RES)
    np.testing.assert_array_equal(ex['A'], photo)  # PNG: lossless.
    np.testing.assert_array_equal(ex['B'], labels)
    np.testing.assert_array_equal(facade_labels.rgb_to_labels(ex['B']), cm)
  assert sorted(ex['name'].decode() for ex in exs) == [f'test_{i:05d}' for i in range(N_TEST)]


def test_train_test_disjoint(source):
  train = _read(source.as_dataset('train'))
  test = _read(source.as_dataset('test'))
  assert len(train) == N_TRAIN and len(test) == N_TEST
  assert len({ex['name'] for ex in train}) == N_TRAIN
  train_px = {ex['A'].tobytes() for ex in train}
  assert not train_px & {ex['A'].tobytes() for ex in test}


def test_process_shards_are_equal_disjoint_and_contiguous(source):
  full = [ex['name'] for ex in _read(source.as_dataset('train'))]
  for count in (2, 3):
    shards = [[ex['name'] for ex in _read(
        source.as_dataset('train', process_index=i, process_count=count))]
              for i in range(count)]
    per = N_TRAIN // count  # Equal shards (as every source): the remainder is left out.
    assert all(len(s) == per for s in shards)
    assert [n for s in shards for n in s] == full[:per * count]  # In order, no duplicates.
  with pytest.raises(ValueError):
    source.as_dataset('train', process_index=2, process_count=2)


def test_order_is_deterministic(source):
  a = [ex['name'] for ex in _read(source.as_dataset('train', shuffle_files=True, seed=5))]
  b = [ex['name'] for ex in _read(source.as_dataset('train', shuffle_files=True, seed=5))]
  assert a == b


def test_unknown_split(source):
  with pytest.raises(DataError):
    source.num_examples('validation')
  with pytest.raises(DataError):
    source.as_dataset('bogus')


def test_sizes_get_separate_copies(data_dir):
  other = procedural_dataset.ProceduralSource(24, 2, 1, data_dir=data_dir)
  assert other.num_examples('train') == 2
  ex = next(iter(other.as_dataset('train')))
  assert ex['A'].shape == (24, 24, 3)
  prepared = procedural_dataset.epath.Path(data_dir) / procedural_dataset.DATASET_NAME
  names = {p.name for p in prepared.iterdir()}
  assert procedural_dataset.config_name(24, 2, 1, 0) in names
  # A second source over the same prepared copy reuses it (no regeneration needed).
  again = procedural_dataset.ProceduralSource(24, 2, 1, data_dir=data_dir)
  assert again.builder.is_prepared()

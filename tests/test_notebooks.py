"""The Colab notebooks in launch/ run top to bottom (tiny parameters) and are kept clean.

Each notebook runs in a Jupyter kernel of this interpreter (ipykernel's ``python3`` spec
starts ``sys.executable``) with the repository root as working directory. Like papermill,
the test injects a cell after the one tagged ``parameters`` that overrides its values.
"""

import glob
import os
import sys

import pytest
from conftest import tiny_config

nbformat = pytest.importorskip('nbformat', reason='pip install -e ".[test]"')
nbclient = pytest.importorskip('nbclient', reason='pip install -e ".[test]"')
pytest.importorskip('ipykernel', reason='pip install -e ".[test]"')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, 'launch')

# The training notebook's config shrunk like tests/conftest.py's tiny_config.
TINY_TRAIN = {
    'image_size': 32, 'batch_size': 2, 'num_train_steps': 4, 'steps_per_dispatch': 1,
    'checkpoint_every_steps': 1000, 'log_every_steps': 1, 'sample_every_steps': 2,
    'num_sample_images': 2, 'data.load_size': 36, 'data.embedded_resolution': 36,
    'data.embedded_num_train': 8, 'data.embedded_num_test': 3, 'data.shuffle_buffer': 8,
    'model.num_downs': 5, 'model.ngf': 8, 'model.ndf': 8,
    'fcn.num_steps': 3, 'fcn.features': (4, 8), 'fcn.batch_size': 2,
}


def load(name):
  nb = nbformat.read(os.path.join(LAUNCH, name), as_version=4)
  return nb


def with_parameters(nb, **params):
  """``nb`` with a cell setting ``params`` right after its ``parameters`` cell."""
  tagged = [i for i, c in enumerate(nb.cells) if 'parameters' in c.metadata.get('tags', [])]
  assert len(tagged) == 1, 'exactly one cell must be tagged "parameters"'
  source = '\n'.join(f'{k} = {v!r}' for k, v in params.items())
  cell = nbformat.v4.new_code_cell(source, metadata={'tags': ['injected-parameters']})
  cell.id = 'injected-parameters'
  nb.cells.insert(tagged[0] + 1, cell)
  for k in params:  # A misspelt parameter would silently do nothing.
    assert f'\n{k} = ' in '\n' + nb.cells[tagged[0]].source, f'no parameter {k}'
  return nb


def execute(nb, cwd):
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': cwd}})
  client.execute()  # Raises CellExecutionError naming the cell if any cell raises.
  return nb


def outputs(nb, output_type=None):
  return [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])
          if output_type is None or o.output_type == output_type]


def text(nb):
  return ''.join(o.get('text', '') for o in outputs(nb, 'stream'))


def images_shown(nb):
  return [o for o in outputs(nb) if 'image/png' in o.get('data', {})]


@pytest.mark.parametrize('name', ['colab_train.ipynb', 'colab_sample.ipynb'])
def test_notebook_is_stored_without_outputs(name):
  nb = load(name)
  nbformat.validate(nb)
  for c in nb.cells:
    if c.cell_type == 'code':
      assert not c.outputs and c.execution_count is None, f'{name}: clear the outputs'


def test_kernel_runs_this_interpreter():
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import KernelManager
  km = KernelManager(kernel_name='python3', kernel_spec_manager=KernelSpecManager())
  assert km.format_kernel_cmd()[0] == sys.executable


def test_train_notebook_trains_evaluates_and_samples(tmp_path):
  workdir = str(tmp_path / 'run')
  nb = with_parameters(load('colab_train.ipynb'), CONFIG='default', WORKDIR=workdir,
                       OVERRIDES=dict(TINY_TRAIN, **{'fcn.cache_dir': str(tmp_path / 'seg')}),
                       TENSORBOARD=False, NUM_SAMPLES=2, NUM_SAMPLE_IMAGES=2)
  execute(nb, ROOT)
  out = text(nb)
  assert 'trained to step 4' in out
  # Grids of steps 2 and 4 shown while training, then the 2 sampled test images.
  assert sorted(os.listdir(os.path.join(workdir, 'samples'))) == [
      'step_0000002.png', 'step_0000004.png']
  assert '2 sample grid(s) shown' in out
  assert len(images_shown(nb)) == 4
  assert os.path.isfile(os.path.join(workdir, 'metrics.json')) and 'psnr' in out
  assert len(glob.glob(os.path.join(workdir, 'translated', 'step_4', '*.png'))) == 2


def test_train_notebook_model_switch_rejects_unknown_models(tmp_path):
  nb = load('colab_train.ipynb')
  switch = [i for i, c in enumerate(nb.cells) if '# ---- Model switch' in c.source and
            c.cell_type == 'code']
  assert len(switch) == 1
  nb.cells = nb.cells[:switch[0] + 1]
  nb = with_parameters(nb, MODEL='cyclegan', WORKDIR=str(tmp_path), CONFIG='default')
  with pytest.raises(nbclient.exceptions.CellExecutionError, match='pix2pix'):
    execute(nb, ROOT)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  """A workdir with a (random-weight) checkpoint and its export."""
  from test_export import save_checkpoint

  from p2p_jax import export
  workdir = str(tmp_path_factory.mktemp('sample_nb_run'))
  save_checkpoint(workdir, tiny_config())
  return workdir, export.export(tiny_config(), workdir)


@pytest.mark.parametrize('source', ['workdir', 'export'])
def test_sample_notebook_shows_input_and_dropout_samples(tiny_run, tmp_path, source):
  workdir, export_dir = tiny_run
  import numpy as np
  from PIL import Image
  image = str(tmp_path / 'labels.png')
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)).save(image)
  params = dict(WORKDIR=workdir if source == 'workdir' else '',
                EXPORT_DIR=export_dir if source == 'export' else '',
                IMAGE_PATH=image, NUM_SAMPLES=3, PAPER_MODE=True)
  nb = execute(with_parameters(load('colab_sample.ipynb'), **params), str(tmp_path))
  shown = images_shown(nb)
  assert len(shown) == 1
  strip = np.asarray(Image.open(tmp_path / 'output_1.png'))
  assert strip.shape == (32, 32, 3)
  for k in (2, 3):
    assert (tmp_path / f'output_{k}.png').is_file()
  spread = float(text(nb).split('mean |difference| between samples: ')[1].split()[0])
  assert spread > 0  # Paper mode: the dropout samples differ.

"""--mode=import_torch: a reference-layout PyTorch generator -> a checkpoint that samples
exactly like PyTorch (conventional mode: running statistics, no dropout)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

torch = pytest.importorskip('torch', reason='importing PyTorch checkpoints needs PyTorch')

from p2p_jax import convert_torch as ct  # noqa: E402
from p2p_jax import import_torch, inference, sample  # noqa: E402
from p2p_jax import torch_reference as tr  # noqa: E402
from p2p_jax.errors import CheckpointError  # noqa: E402


def reference_generator(norm='batch', num_downs=5, ngf=4, seed=0):
  """A reference-layout U-Net with non-trivial biases and running statistics."""
  torch.manual_seed(seed)
  net = tr.UnetGenerator(3, 3, num_downs, ngf, norm=norm, use_dropout=True)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.bias.uniform_(-0.2, 0.2)
        m.running_mean.uniform_(-0.3, 0.3)
        m.running_var.uniform_(0.5, 1.5)
      elif isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None:
        m.bias.uniform_(-0.1, 0.1)
  return net.eval()


def cli_config(path, **overrides):
  # The model fields of --config differ from the checkpoint's: the import must set them.
  return tiny_config(**{'import_torch.path': str(path), 'model.num_downs': 6,
                        'model.ngf': 16, 'model.g_norm': 'instance', **overrides})


def torch_eval(net, x):
  with torch.no_grad():
    return net(tr.nhwc_to_torch(x)).numpy().transpose(0, 2, 3, 1)


@pytest.fixture(name='imported', scope='module', params=['batch', 'instance'])
def _imported(request, tmp_path_factory):
  tmp = tmp_path_factory.mktemp(f'import_{request.param}')
  net = reference_generator(request.param)
  path = tmp / 'latest_net_G.pth'
  torch.save(net.state_dict(), path)
  workdir = str(tmp / 'work')
  import_torch.import_generator(cli_config(path), workdir)
  return net, workdir, request.param


def test_converted_checkpoint_samples_like_pytorch(imported):
  net, workdir, norm = imported
  translator = inference.Translator.from_workdir(workdir, paper_mode=False)
  m = translator.config.model
  assert (m.generator, m.num_downs, m.ngf, m.g_norm, m.dropout_placement) == (
      'unet', 5, 4, norm, 'reference')
  assert translator.restored.step == 0 and translator.restored.channels == (3, 3)
  for size in (32, 64):  # The training size and, fully convolutionally, twice it.
    x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    np.testing.assert_allclose(translator.translate(x), torch_eval(net, x), rtol=1e-4,
                               atol=2e-5)


def test_sample_mode_runs_on_it_unchanged(imported, tmp_path):
  net, workdir, _ = imported
  rng = np.random.default_rng(0)
  inputs = tmp_path / 'in'
  inputs.mkdir()
  pixels = {}
  for name in ('a', 'b'):
    pixels[name] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels[name]).save(inputs / f'{name}.png')
  c = cli_config('', **{'sample.input_dir': str(inputs), 'sample.paper_mode': False,
                        'sample.output_dir': str(tmp_path / 'out')})
  sample.sample(c, workdir)  # What --mode=sample runs.
  for name, p in pixels.items():
    got = np.asarray(Image.open(tmp_path / 'out' / 'images' / f'{name}_output.png'), np.int32)
    want = np.clip(np.round((torch_eval(net, p[None] / 127.5 - 1.0)[0] + 1) * 127.5), 0, 255)
    assert np.abs(got - want).max() <= 1  # PNG quantisation only.


def check_refused(tmp_path, path, match):
  workdir = tmp_path / 'work'
  with pytest.raises(CheckpointError, match=match):
    import_torch.import_generator(cli_config(path), str(workdir))
  assert not workdir.exists() or not os.listdir(workdir)  # Nothing written.


def test_wrong_file_is_refused_and_nothing_written(tmp_path):
  text = tmp_path / 'notes_net_G.pth'
  text.write_text('not a checkpoint')
  check_refused(tmp_path, text, 'not a PyTorch checkpoint')
  check_refused(tmp_path, tmp_path / 'missing.pth', 'No such file')


def test_unknown_architecture_is_refused(tmp_path):
  d = tmp_path / 'latest_net_D.pth'
  torch.save(tr.NLayerDiscriminator(6, 4, 3).state_dict(), d)
  check_refused(tmp_path, d, 'Not a reference U-Net generator')
  resnet_like = {'model.1.weight': torch.zeros(64, 3, 7, 7), 'model.1.bias': torch.zeros(64)}
  r = tmp_path / 'resnet_net_G.pth'
  torch.save(resnet_like, r)
  check_refused(tmp_path, r, 'ResNet')


def test_mismatched_shapes_name_the_first_layer(tmp_path):
  sd = reference_generator().state_dict()
  key = 'model.model.1.model.3.model.5.weight'  # Level 2's up conv (Flax up2).
  sd[key] = torch.zeros(sd[key].shape[0], sd[key].shape[1] + 1, 4, 4)
  bad = tmp_path / 'bad_net_G.pth'
  torch.save(sd, bad)
  check_refused(tmp_path, bad, r'model\.model\.1\.model\.3\.model\.5\.weight .*up2')
  sd = reference_generator().state_dict()
  del sd['model.model.1.model.2.running_var']
  torch.save(sd, bad)
  check_refused(tmp_path, bad, r"model\.model\.1\.model\.2 \(BatchNorm_0\) has no 'running_var'")


def test_existing_checkpoints_are_not_overwritten(imported):
  _, workdir, _ = imported
  net = reference_generator(seed=1)
  path = os.path.join(workdir, 'other_net_G.pth')
  torch.save(net.state_dict(), path)
  with pytest.raises(CheckpointError, match='already holds checkpoints'):
    import_torch.import_generator(cli_config(path), workdir)


def test_infer_unet_reads_the_reference_names():
  for name, depth in (('unet_128', 7), ('unet_256', 8)):
    net = tr.define_G(name, 3, 2, ngf=2, norm='instance')
    spec = ct.infer_unet(net.state_dict())
    assert (spec.name, spec.num_downs, spec.ngf, spec.norm, spec.input_nc, spec.output_nc) == (
        name, depth, 2, 'instance', 3, 2)
  spec = ct.infer_unet({'module.' + k: v for k, v in
                        tr.UnetGenerator(1, 3, 6, 2, norm='none').state_dict().items()})
  assert (spec.num_downs, spec.norm, spec.input_nc) == (6, 'none', 1)


def test_command_line_reports_a_bad_file_in_one_line(tmp_path):
  bad = tmp_path / 'latest_net_G.pth'
  bad.write_bytes(b'\x00' * 16)
  r = subprocess.run(
      [sys.executable, '-m', 'p2p_jax.main', '--mode=import_torch', '--config=configs/default.py',
       f'--workdir={tmp_path / "w"}', f'--config.import_torch.path={bad}'],
      capture_output=True, text=True, timeout=300,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert r.returncode == 1, r.stderr[-2000:]
  errors = [line for line in r.stderr.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1 and 'not a PyTorch checkpoint' in errors[0], r.stderr[-2000:]
  assert 'Traceback' not in r.stderr and not (tmp_path / 'w').exists()

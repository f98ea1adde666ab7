"""--mode=import_torch: a reference-layout PyTorch generator -> a checkpoint that samples
exactly like PyTorch (conventional mode: running statistics, no dropout). U-Nets become
pix2pix checkpoints, ResNet generators CycleGAN ones."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import tiny_config, tiny_cyclegan_config
from PIL import Image

torch = pytest.importorskip('torch', reason='importing PyTorch checkpoints needs PyTorch')

from p2p_jax import convert_torch as ct  # noqa: E402
from p2p_jax import checkpoints, cyclegan, gan, import_torch, inference, sample  # noqa: E402
from p2p_jax import torch_reference as tr  # noqa: E402
from p2p_jax.errors import CheckpointError, ConfigError  # noqa: E402
from p2p_jax.models.resnet import ResnetGenerator  # noqa: E402


def reference_generator(norm='batch', num_downs=5, ngf=4, seed=0):
  """A reference-layout U-Net with non-trivial biases and running statistics."""
  torch.manual_seed(seed)
  return perturbed(tr.UnetGenerator(3, 3, num_downs, ngf, norm=norm, use_dropout=True))


def perturbed(net):
  """``net`` in eval mode with non-zero biases and non-trivial BatchNorm statistics, so a
  mis-mapped bias or statistic changes the outputs."""
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
  check_refused(tmp_path, d, 'Not a reference generator')
  resnet_like = {'model.1.weight': torch.zeros(64, 3, 7, 7), 'model.1.bias': torch.zeros(64)}
  r = tmp_path / 'resnet_net_G.pth'
  torch.save(resnet_like, r)
  check_refused(tmp_path, r, r"ResNet generator with 0 blocks ends with .*'model\.17\.weight'")


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


# --- ResNet generators -> CycleGAN checkpoints ---------------------------------------------


def reference_resnet(input_nc=3, output_nc=3, norm='instance', n_blocks=2, ngf=4, seed=0):
  """A reference-layout ResNet generator with non-trivial biases (and running statistics)."""
  torch.manual_seed(seed)
  return perturbed(tr.ResnetGenerator(input_nc, output_nc, ngf=ngf, n_blocks=n_blocks,
                                      norm=norm))


def cyclegan_cli_config(path, **overrides):
  # The model fields of --config differ from the checkpoint's: the import must set them.
  return tiny_cyclegan_config(**{'import_torch.path': str(path), 'model.generator':
                                 'resnet_5blocks', 'model.ngf': 8, **overrides})


def restore_cyclegan(workdir):
  """(step, config, channels, nets, state) of the workdir's checkpoint, restored the way
  training resumes (an abstract state of the config's networks)."""
  ckpt = checkpoints.Checkpointer(workdir, create=False)
  try:
    step, config, channels = ckpt.restore_meta()
    info = gan.DataInfo(*channels)
    nets = cyclegan.build(config, info)
    state = ckpt.restore_state(jax.eval_shape(
        lambda: cyclegan.init_state(nets, config, info, config.seed, 1)))
  finally:
    ckpt.close()
  return step, config, channels, nets, state


def assert_translates_like(net, module, params, channels):
  for size in (32, 64):  # The training size and, fully convolutionally, twice it.
    x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, channels)).astype(np.float32)
    got = module.apply({'params': params}, x, train=False)
    np.testing.assert_allclose(np.asarray(got), torch_eval(net, x), rtol=1e-4, atol=2e-5)


@pytest.fixture(name='resnet_imported', scope='module')
def _resnet_imported(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('import_resnet')
  net = reference_resnet()
  path = tmp / 'horse2zebra.pth'  # A released CycleGAN model is one generator.
  torch.save(net.state_dict(), path)
  workdir = str(tmp / 'work')
  import_torch.import_generator(cyclegan_cli_config(path), workdir)
  return net, workdir


def test_resnet_imports_as_a_cyclegan_checkpoint_translating_like_pytorch(resnet_imported):
  net, workdir = resnet_imported
  step, config, channels, nets, state = restore_cyclegan(workdir)
  m = config.model
  assert (step, m.name, m.generator, m.ngf, m.g_norm, channels) == (
      0, 'cyclegan', 'resnet_2blocks', 4, 'instance', (3, 3))
  assert_translates_like(net, nets.g_a, state.g_params['g_a'], 3)
  # The rest is a fresh step-0 train state: G_B and both Ds initialised, pools for 1 device.
  fresh = cyclegan.create_train_state(nets, config.seed, (32, 32, 3), (32, 32, 3))
  for a, b in zip(jax.tree.leaves((state.g_params['g_b'], state.d_params, state.pools)),
                  jax.tree.leaves((fresh.g_params['g_b'], fresh.d_params, fresh.pools))):
    np.testing.assert_array_equal(a, b)
  assert all(x.shape[0] == 1 for x in jax.tree.leaves(state.pools))
  # ... which training continues: one step moves the imported G_A.
  new, metrics = jax.jit(lambda s, b: cyclegan.train_step(s, b, nets=nets))(
      state, {'A': np.zeros((1, 32, 32, 3), np.float32), 'B': np.ones((1, 32, 32, 3), np.float32)})
  assert int(new.step) == 1 and np.isfinite(float(metrics['g_loss']))
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), new.g_params['g_a'],
                       state.g_params['g_a'])
  assert max(jax.tree.leaves(moved)) > 0


def test_sample_mode_translates_an_imported_resnet_like_pytorch(resnet_imported, tmp_path):
  net, workdir = resnet_imported
  rng = np.random.default_rng(1)
  inputs = tmp_path / 'horses'
  inputs.mkdir()
  pixels = {n: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for n in ('h0', 'h1')}
  for n, p in pixels.items():
    Image.fromarray(p).save(inputs / f'{n}.png')
  c = cyclegan_cli_config('', **{'sample.input_dir': str(inputs), 'sample.direction': 'AtoB',
                                 'sample.output_dir': str(tmp_path / 'out')})
  sample.sample(c, workdir)  # What --mode=sample runs.
  for n, p in pixels.items():
    got = np.asarray(Image.open(tmp_path / 'out' / 'images' / f'{n}_translation.png'),
                     np.int32)
    want = np.clip(np.round((torch_eval(net, p[None] / 127.5 - 1.0)[0] + 1) * 127.5), 0, 255)
    assert np.abs(got - want).max() <= 1  # PNG quantisation only.


def test_single_resnet_file_warns_that_the_other_generator_is_untrained(tmp_path, caplog):
  path = tmp_path / 'latest_net_G_A.pth'
  torch.save(reference_resnet(n_blocks=1).state_dict(), path)
  with caplog.at_level('WARNING'):
    import_torch.import_generator(cyclegan_cli_config(path), str(tmp_path / 'w'))
  warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
  assert len(warnings) == 1 and 'G_B (B -> A) is freshly initialised' in warnings[0], warnings
  assert 'untrained' in warnings[0]


def test_both_directions_import_with_path_b_and_direction(tmp_path, caplog):
  # A has 3 channels, B 1 (photo <-> label map): G_A is 3 -> 1, G_B 1 -> 3.
  g_a, g_b = reference_resnet(3, 1, seed=1), reference_resnet(1, 3, seed=2)
  torch.save(g_a.state_dict(), tmp_path / 'latest_net_G_A.pth')
  torch.save(g_b.state_dict(), tmp_path / 'latest_net_G_B.pth')
  workdir = str(tmp_path / 'w')
  c = cyclegan_cli_config(tmp_path / 'latest_net_G_B.pth', **{
      'import_torch.direction': 'BtoA', 'import_torch.path_b': str(tmp_path / 'latest_net_G_A.pth'),
      'loss.lambda_identity': 0.0})
  with caplog.at_level('WARNING'):
    import_torch.import_generator(c, workdir)
  assert not [r for r in caplog.records if r.levelname == 'WARNING']
  _, config, channels, nets, state = restore_cyclegan(workdir)
  assert channels == (3, 1) and config.model.generator == 'resnet_2blocks'
  assert_translates_like(g_a, nets.g_a, state.g_params['g_a'], 3)
  assert_translates_like(g_b, nets.g_b, state.g_params['g_b'], 1)


def test_resnet_refusals_write_nothing(tmp_path):
  def refused(path, match, error=CheckpointError, **overrides):
    workdir = tmp_path / 'work'
    with pytest.raises(error, match=match):
      import_torch.import_generator(cyclegan_cli_config(path, **overrides), str(workdir))
    assert not workdir.exists() or not os.listdir(workdir)

  sd = reference_resnet().state_dict()
  key = 'model.11.conv_block.5.weight'  # Block 1's second conv (Flax block1/Conv_1).
  sd[key] = torch.zeros(sd[key].shape[0] + 1, *sd[key].shape[1:])
  bad = tmp_path / 'bad_net_G_A.pth'
  torch.save(sd, bad)
  refused(bad, r'model\.11\.conv_block\.5\.weight has shape .*block1/Conv_1')
  batch = tmp_path / 'batch_net_G_A.pth'
  torch.save(reference_resnet(norm='batch').state_dict(), batch)
  refused(batch, 'resnet_2blocks with batch norm')
  good = tmp_path / 'latest_net_G_A.pth'
  torch.save(reference_resnet().state_dict(), good)
  other = tmp_path / 'latest_net_G_B.pth'
  torch.save(reference_resnet(ngf=2).state_dict(), other)
  refused(good, 'is not the reverse of', **{'import_torch.path_b': str(other)})
  refused(good, 'BtoA', ConfigError, **{'import_torch.direction': 'both'})
  # The model of --config must be the one the file holds.
  workdir = tmp_path / 'work'
  with pytest.raises(ConfigError, match='CycleGAN config'):
    import_torch.import_generator(cli_config(good), str(workdir))
  unet = tmp_path / 'latest_net_G.pth'
  torch.save(reference_generator().state_dict(), unet)
  refused(unet, 'pix2pix config', ConfigError)
  with pytest.raises(ConfigError, match='imports alone'):
    import_torch.import_generator(cli_config(unet, **{'import_torch.path_b': str(good)}),
                                  str(workdir))
  assert not workdir.exists() or not os.listdir(workdir)


@pytest.mark.parametrize('norm', ['batch', 'none'])
def test_resnet_layout_converts_batch_and_no_norm(norm):
  # CycleGAN refuses batch norm, but the layout covers the reference's every norm.
  net = reference_resnet(3, 2, norm=norm)
  with torch.no_grad():  # Without a norm, N(0, 0.02) weights would leave only the last bias.
    for m in net.modules():
      if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
        m.weight.normal_(0, m.weight[0].numel() ** -0.5)
  sd = net.state_dict()
  spec = ct.infer_resnet(sd)
  assert (spec.name, spec.norm, spec.ngf, spec.input_nc, spec.output_nc) == (
      'resnet_2blocks', norm, 4, 3, 2)
  g = ResnetGenerator(output_channels=2, num_blocks=2, ngf=4, norm=norm)
  expected = jax.eval_shape(lambda: g.init(jax.random.key(0), np.zeros((1, 32, 32, 3)),
                                           train=False))
  variables = ct.to_flax(sd, ct.layout(spec), norm, expected)
  for size in (32, 64):
    x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    want = torch_eval(net, x)
    assert want.std() > 0.03  # Outputs that depend on every layer, not a constant.
    np.testing.assert_allclose(np.asarray(g.apply(variables, x, train=False)), want,
                               rtol=1e-4, atol=2e-5)


def test_infer_resnet_reads_the_reference_names():
  for blocks in (6, 9):
    for norm in ('instance', 'none'):
      spec = ct.infer(tr.ResnetGenerator(3, 1, ngf=2, n_blocks=blocks, norm=norm).state_dict())
      assert (spec.name, spec.n_blocks, spec.ngf, spec.norm, spec.input_nc, spec.output_nc,
              spec.dropout) == (f'resnet_{blocks}blocks', blocks, 2, norm, 3, 1, False)
  # use_dropout: a Dropout before each block's second pad moves its conv from 5 to 6.
  sd = reference_resnet(norm='batch').state_dict()
  shifted = {('module.' + k.replace('conv_block.6.', 'conv_block.7.')
              .replace('conv_block.5.', 'conv_block.6.')): v for k, v in sd.items()}
  spec = ct.infer(shifted)
  assert (spec.n_blocks, spec.norm, spec.dropout) == (2, 'batch', True)
  assert [k for k in shifted if '.10.conv_block.6.' in k] == ['module.model.10.conv_block.6.weight']
  g = ResnetGenerator(output_channels=3, num_blocks=2, ngf=4, norm='batch')
  expected = jax.eval_shape(lambda: g.init(jax.random.key(0), np.zeros((1, 32, 32, 3)),
                                           train=False))
  converted = ct.to_flax(shifted, ct.layout(spec), 'batch', expected)
  want = ct.to_flax(sd, ct.layout(ct.infer(sd)), 'batch', expected)
  for a, b in zip(jax.tree.leaves(converted), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)

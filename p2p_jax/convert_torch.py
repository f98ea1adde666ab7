"""PyTorch state dicts of the reference's networks -> Flax variables of p2p_jax's networks.

The reference (junyanz/pytorch-CycleGAN-and-pix2pix) saves ``net.state_dict()`` as
``<epoch>_net_G.pth`` (pix2pix's U-Net) or ``<epoch>_net_G_A.pth`` / ``_G_B`` (CycleGAN's
ResNet generators; its released CycleGAN models are one such generator each); the keys
name module attributes and ``nn.Sequential`` positions (``model.model.1.model.2.running_mean``,
``model.10.conv_block.1.weight``). Each architecture here has a *layout*: its layers in
forward order, each with the torch prefix and the path of the Flax module it maps to
(``'block0/Conv_1'`` for a nested one). Converting copies every layer, transforming

* ``Conv2d`` weights [O, I, kh, kw] -> Flax kernels [kh, kw, I, O] (HWIO);
* ``ConvTranspose2d`` weights [I, O, kh, kw] -> [kh, kw, I, O]: for the U-Net's up convs
  (kind ``conv_transpose``) spatially flipped, since PyTorch's transposed conv is the
  adjoint of a conv while ``p2p_jax.ops.conv_transpose_4x4_s2`` (``lax.conv_transpose``
  without ``transpose_kernel``) convolves the dilated input with the kernel as given; for
  the ResNet's (kind ``plain_conv_transpose``, ``p2p_jax.models.resnet.PlainConvTranspose``,
  which flips inside) as they are;
* ``BatchNorm2d`` weight / bias -> ``scale`` / ``bias`` (params) and running_mean /
  running_var -> ``mean`` / ``var`` (batch_stats); ``num_batches_tracked`` is dropped.

and checks the result against the Flax network's own variable shapes: a missing or
unexpected key, or a shape that differs, raises ``CheckpointError`` naming the first such
layer. The reference's affine-free ``InstanceNorm2d`` has no weights (old checkpoints may
hold its running statistics, which the reference ignores when loading too). With
``norm='none'`` the reference's convs have no bias but p2p_jax's do: they are set to 0.

Conversion works on numpy arrays (or CPU tensors); only :func:`load_state_dict` imports torch.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import numpy as np
from flax import traverse_util

from p2p_jax.errors import CheckpointError, ConfigError

StateDict = Mapping[str, Any]
UNET_NAMES = {7: 'unet_128', 8: 'unet_256'}  # The reference's --netG names by depth.
_IGNORED_SUFFIXES = ('num_batches_tracked',)


@dataclasses.dataclass(frozen=True)
class Layer:
  torch: str  # Prefix of the layer's state-dict keys (no trailing dot).
  flax: str  # Flax module path in params / batch_stats ('down0', 'block0/Conv_1').
  kind: str  # 'conv', 'conv_transpose', 'plain_conv_transpose' or 'norm'.


@dataclasses.dataclass(frozen=True)
class UnetSpec:
  """A reference U-Net generator, as read from its state dict."""

  num_downs: int
  ngf: int
  norm: str  # 'batch', 'instance' or 'none'.
  input_nc: int
  output_nc: int

  @property
  def name(self) -> str:
    return UNET_NAMES.get(self.num_downs, f'unet ({self.num_downs} levels)')


@dataclasses.dataclass(frozen=True)
class ResnetSpec:
  """A reference ResNet generator (CycleGAN's), as read from its state dict."""

  n_blocks: int
  ngf: int
  norm: str  # 'batch', 'instance' or 'none'.
  input_nc: int
  output_nc: int
  dropout: bool = False  # The reference's use_dropout: a Dropout(0.5) inside each block.

  @property
  def name(self) -> str:
    return f'resnet_{self.n_blocks}blocks'


# ------------------------------------------------------------------------------ layouts


def _unet_level(level: int) -> str:
  """State-dict prefix of U-Net level ``level``'s Sequential (0 = outermost)."""
  return 'model.model' if level == 0 else 'model.model.1' + '.model.3' * (level - 1) + '.model'


def unet_layout(num_downs: int, norm: str) -> list[Layer]:
  """The reference ``UnetGenerator``'s layers in forward order, with p2p_jax's names.

  Per level: outermost ``[down, sub, relu, up, tanh]``; middle ``[lrelu, down, norm, sub,
  relu, up, norm(, dropout)]``; innermost ``[lrelu, down, relu, up, norm]``. Flax names the
  norms ``BatchNorm_k`` in creation order: the encoder's (levels 1 .. n-2), then the
  decoder's (levels n-1 .. 1).
  """
  n = num_downs
  down, up, enc_norms, dec_norms = [], [], [], []
  for level in range(n):
    p = _unet_level(level)
    if level == 0:
      down.append(Layer(f'{p}.0', 'down0', 'conv'))
      up.append(Layer(f'{p}.3', 'up0', 'conv_transpose'))
    elif level == n - 1:
      down.append(Layer(f'{p}.1', f'down{level}', 'conv'))
      up.append(Layer(f'{p}.3', f'up{level}', 'conv_transpose'))
      dec_norms.append(f'{p}.4')
    else:
      down.append(Layer(f'{p}.1', f'down{level}', 'conv'))
      enc_norms.append(f'{p}.2')
      up.append(Layer(f'{p}.5', f'up{level}', 'conv_transpose'))
      dec_norms.append(f'{p}.6')
  norms = enc_norms + dec_norms[::-1]  # dec_norms was built outermost first.
  flax_norm = {t: Layer(t, f'BatchNorm_{k}', 'norm') for k, t in enumerate(norms)}
  layers = []
  for level in range(n):  # Encoder: down conv, then its norm.
    layers.append(down[level])
    if 0 < level < n - 1:
      layers.append(flax_norm[enc_norms[level - 1]])
  for level in reversed(range(n)):  # Decoder: up conv, then its norm.
    layers.append(up[level])
    if level > 0:
      layers.append(flax_norm[dec_norms[level - 1]])
  return layers


def resnet_layout(n_blocks: int, dropout: bool = False) -> list[Layer]:
  """The reference ``ResnetGenerator`` (one ``nn.Sequential``, ``model.<i>``) in forward
  order, with the paths of ``p2p_jax.models.resnet.ResnetGenerator``.

  ``model``: 0 pad, 1 conv 7x7, 2 norm, 3 relu; 4/7 stride-2 convs, each + norm, relu;
  ``10 .. 9+n`` ResnetBlocks, whose ``conv_block`` is pad, conv, norm, relu, [dropout], pad,
  conv, norm; then two transposed convs, each + norm, relu; pad, conv 7x7, tanh. Flax names
  the generator's norms ``BatchNorm_0..4`` (in, down0, down1, up0, up1) and each block's
  ``block<i>/BatchNorm_0..1``.
  """
  layers = [Layer('model.1', 'c7s1_in', 'conv'), Layer('model.2', 'BatchNorm_0', 'norm'),
            Layer('model.4', 'down0', 'conv'), Layer('model.5', 'BatchNorm_1', 'norm'),
            Layer('model.7', 'down1', 'conv'), Layer('model.8', 'BatchNorm_2', 'norm')]
  second = 6 if dropout else 5  # The block's second conv.
  for i in range(n_blocks):
    p, f = f'model.{10 + i}.conv_block', f'block{i}'
    layers += [Layer(f'{p}.1', f'{f}/Conv_0', 'conv'), Layer(f'{p}.2', f'{f}/BatchNorm_0', 'norm'),
               Layer(f'{p}.{second}', f'{f}/Conv_1', 'conv'),
               Layer(f'{p}.{second + 1}', f'{f}/BatchNorm_1', 'norm')]
  u = 10 + n_blocks
  layers += [Layer(f'model.{u}', 'up0', 'plain_conv_transpose'),
             Layer(f'model.{u + 1}', 'BatchNorm_3', 'norm'),
             Layer(f'model.{u + 3}', 'up1', 'plain_conv_transpose'),
             Layer(f'model.{u + 4}', 'BatchNorm_4', 'norm'),
             Layer(f'model.{u + 7}', 'c7s1_out', 'conv')]
  return layers


def layout(spec: UnetSpec | ResnetSpec) -> list[Layer]:
  """The layout of the generator ``spec`` describes."""
  if isinstance(spec, ResnetSpec):
    return resnet_layout(spec.n_blocks, spec.dropout)
  return unet_layout(spec.num_downs, spec.norm)


def nlayer_layout(n_layers: int) -> list[Layer]:
  """The reference ``NLayerDiscriminator``: ``model.<i>``; conv, [conv, norm, lrelu]..., conv."""
  layers = [Layer('model.0', 'Conv_0', 'conv')]
  for n in range(1, n_layers + 1):
    layers += [Layer(f'model.{3 * n - 1}', f'Conv_{n}', 'conv'),
               Layer(f'model.{3 * n}', f'BatchNorm_{n - 1}', 'norm')]
  layers.append(Layer(f'model.{3 * n_layers + 2}', f'Conv_{n_layers + 1}', 'conv'))
  return layers


def pixel_layout() -> list[Layer]:
  """The reference ``PixelDiscriminator``: ``net.<i>``; conv, lrelu, conv, norm, lrelu, conv."""
  return [Layer('net.0', 'Conv_0', 'conv'), Layer('net.2', 'Conv_1', 'conv'),
          Layer('net.3', 'BatchNorm_0', 'norm'), Layer('net.5', 'Conv_2', 'conv')]


# ---------------------------------------------------------------------------- conversion


def _numpy(value) -> np.ndarray:
  if hasattr(value, 'detach'):  # A torch tensor.
    value = value.detach().cpu().numpy()
  return np.asarray(value, np.float32)


def _kernel(weight: np.ndarray, kind: str) -> np.ndarray:
  if kind == 'conv':
    return weight.transpose(2, 3, 1, 0)
  if kind == 'plain_conv_transpose':
    return weight.transpose(2, 3, 0, 1)
  return weight.transpose(2, 3, 0, 1)[::-1, ::-1]  # conv_transpose


def _shape(x) -> tuple[int, ...]:
  return tuple(int(d) for d in x.shape)


def strip_prefix(state_dict: StateDict) -> dict[str, Any]:
  """Drops ``nn.DataParallel``'s ``module.`` prefix when every key has it."""
  keys = list(state_dict)
  if keys and all(k.startswith('module.') for k in keys):
    return {k[len('module.'):]: v for k, v in state_dict.items()}
  return dict(state_dict)


def _flat(tree: Mapping[str, Any]) -> dict[str, Any]:
  """``{'block0/Conv_1/kernel': leaf, ...}`` of a (possibly nested) variable collection."""
  return traverse_util.flatten_dict(dict(tree), sep='/') if tree else {}


def to_flax(state_dict: StateDict, layers: list[Layer], norm: str, expected: Mapping[str, Any],
            what: str = 'network') -> dict[str, dict]:
  """Converts ``state_dict`` along ``layers`` into ``{'params': ..., 'batch_stats': ...}``.

  ``expected`` is the Flax network's variables (arrays or ``jax.ShapeDtypeStruct``s, e.g.
  from ``jax.eval_shape(module.init, ...)``); the result has exactly its structure and
  shapes, or ``CheckpointError`` names the first layer that does not fit.
  """
  sd = strip_prefix(state_dict)
  want_params = _flat(expected.get('params', {}))
  want_stats = _flat(expected.get('batch_stats', {}))
  params: dict[str, np.ndarray] = {}
  stats: dict[str, np.ndarray] = {}
  used: set[str] = set()

  def take(layer: Layer, name: str, required: bool = True):
    key = f'{layer.torch}.{name}'
    if key not in sd:
      if required:
        raise CheckpointError(
            f'{what}: layer {layer.torch} ({layer.flax}) has no {name!r} in the checkpoint '
            f'(missing key {key!r}); is it a different architecture or norm?')
      return None
    used.add(key)
    return _numpy(sd[key])

  def put(tree: dict, layer: Layer, leaf: str, value: np.ndarray, torch_name: str,
          want: Mapping[str, Any], torch_shape: tuple[int, ...] | None = None):
    path = f'{layer.flax}/{leaf}'
    if path not in want:
      raise CheckpointError(
          f'{what}: layer {layer.torch} has a {torch_name!r} that {layer.flax} does not '
          f'(key {layer.torch}.{torch_name}); is it a different architecture or norm?')
    target = _shape(want[path])
    if _shape(value) != target:
      raise CheckpointError(
          f'{what}: layer {layer.torch}.{torch_name} has shape '
          f'{torch_shape or _shape(value)} -> {path} {_shape(value)}, but the '
          f'model expects {target}.')
    tree[path] = np.ascontiguousarray(value)

  for layer in layers:
    if layer.kind == 'norm':
      if norm == 'batch':
        put(params, layer, 'scale', take(layer, 'weight'), 'weight', want_params)
        put(params, layer, 'bias', take(layer, 'bias'), 'bias', want_params)
        put(stats, layer, 'mean', take(layer, 'running_mean'), 'running_mean', want_stats)
        put(stats, layer, 'var', take(layer, 'running_var'), 'running_var', want_stats)
      else:  # Affine-free InstanceNorm or Identity: no weights; old running stats ignored.
        for name in ('weight', 'bias'):
          if f'{layer.torch}.{name}' in sd:
            raise CheckpointError(
                f'{what}: layer {layer.torch} is an affine norm ({name!r} present), but '
                f"norm {norm!r} has no parameters; only the reference's batch and "
                'affine-free instance norm are supported.')
        used.update(k for k in sd if k.startswith(layer.torch + '.running_'))
      continue
    weight = take(layer, 'weight')
    put(params, layer, 'kernel', _kernel(weight, layer.kind), 'weight', want_params,
        _shape(weight))
    bias = take(layer, 'bias', required=False)
    bias_path = f'{layer.flax}/bias'
    wants_bias = bias_path in want_params
    if bias is None and wants_bias and norm == 'none':
      bias = np.zeros(_shape(want_params[bias_path]), np.float32)  # Reference: none.
    if bias is not None or wants_bias:
      if bias is None:
        take(layer, 'bias')  # Raises: missing key.
      put(params, layer, 'bias', bias, 'bias', want_params)

  left = [k for k in sd if k not in used and not k.endswith(_IGNORED_SUFFIXES)]
  if left:
    raise CheckpointError(f'{what}: unexpected key {left[0]!r} in the checkpoint '
                          f'({len(left)} unused); is it a different architecture?')
  for tree, want, kind in ((params, want_params, 'params'), (stats, want_stats, 'batch_stats')):
    for path in want:
      if path not in tree:
        raise CheckpointError(f'{what}: nothing in the checkpoint for {kind}/{path}.')
  out = {'params': traverse_util.unflatten_dict(params, sep='/')}
  if want_stats:
    out['batch_stats'] = traverse_util.unflatten_dict(stats, sep='/')
  return out


# ------------------------------------------------------------------------ the generators


def infer_unet(state_dict: StateDict) -> UnetSpec:
  """Reads a reference U-Net generator's depth, widths and norm from its state dict."""
  sd = strip_prefix(state_dict)
  first, last = 'model.model.0.weight', 'model.model.3.weight'
  if first not in sd or last not in sd:
    sample = ', '.join(list(sd)[:3]) or 'none'
    raise CheckpointError(
        f'Not a reference U-Net generator state dict (no {first!r}; first keys: {sample}). '
        'Expected a *_net_G.pth saved by junyanz/pytorch-CycleGAN-and-pix2pix.')
  num_downs = 1
  while f'{_unet_level(num_downs)}.1.weight' in sd:
    num_downs += 1
  if num_downs < 5:
    raise CheckpointError(f'Unknown architecture: a U-Net with {num_downs} levels; the '
                          'reference builds 5 or more (unet_128: 7, unet_256: 8).')
  if f'{_unet_level(1)}.2.weight' in sd:
    norm = 'batch'
  elif 'model.model.0.bias' in sd:  # The reference gives convs a bias only with instance norm.
    norm = 'instance'
  else:
    norm = 'none'
  w_in, w_out = _shape(sd[first]), _shape(sd[last])
  return UnetSpec(num_downs=num_downs, ngf=w_in[0], norm=norm, input_nc=w_in[1],
                  output_nc=w_out[1])


def _is_resnet(sd: StateDict) -> bool:
  w = sd.get('model.1.weight')
  return w is not None and len(_shape(w)) == 4 and _shape(w)[2:] == (7, 7)


def infer_resnet(state_dict: StateDict) -> ResnetSpec:
  """Reads a reference ResNet generator's blocks, widths, norm and channels from its
  state dict (``model.1`` is the 7x7 input conv, ``model.<10+i>.conv_block`` block i)."""
  sd = strip_prefix(state_dict)
  if not _is_resnet(sd):
    sample = ', '.join(list(sd)[:3]) or 'none'
    raise CheckpointError(
        f"Not a reference ResNet generator state dict (no 7x7 'model.1.weight'; first keys: "
        f'{sample}). Expected a *_net_G_A.pth or a CycleGAN model saved by '
        'junyanz/pytorch-CycleGAN-and-pix2pix.')
  n_blocks = 0
  while f'model.{10 + n_blocks}.conv_block.1.weight' in sd:
    n_blocks += 1
  # use_dropout puts a Dropout before the block's second pad: its conv moves from 5 to 6.
  dropout = n_blocks > 0 and 'model.10.conv_block.5.weight' not in sd
  if 'model.2.weight' in sd:
    norm = 'batch'
  elif 'model.1.bias' in sd:  # The reference gives convs a bias only with instance norm.
    norm = 'instance'
  else:
    norm = 'none'
  last = f'model.{17 + n_blocks}.weight'
  if last not in sd:
    raise CheckpointError(
        f'A reference ResNet generator with {n_blocks} blocks ends with the 7x7 conv '
        f'{last!r}, which the checkpoint lacks; is it incomplete or a different architecture?')
  w_in, w_out = _shape(sd['model.1.weight']), _shape(sd[last])
  return ResnetSpec(n_blocks=n_blocks, ngf=w_in[0], norm=norm, input_nc=w_in[1],
                    output_nc=w_out[0], dropout=dropout)


def infer(state_dict: StateDict) -> UnetSpec | ResnetSpec:
  """The reference generator a state dict holds: its U-Net (pix2pix) or ResNet (CycleGAN)."""
  sd = strip_prefix(state_dict)
  if 'model.model.0.weight' in sd:
    return infer_unet(sd)
  if _is_resnet(sd):
    return infer_resnet(sd)
  sample = ', '.join(list(sd)[:3]) or 'none'
  raise CheckpointError(
      "Not a reference generator state dict (neither the U-Net's 'model.model.0.weight' nor "
      f"the ResNet's 7x7 'model.1.weight'; first keys: {sample}). Expected a *_net_G.pth, "
      '*_net_G_A.pth or released model saved by junyanz/pytorch-CycleGAN-and-pix2pix.')


def load_state_dict(path: str) -> dict[str, Any]:
  """Reads a ``torch.save``d state dict (CPU tensors); CheckpointError if it is not one."""
  if not path:
    raise ConfigError('Name the PyTorch checkpoint: --config.import_torch.path=latest_net_G.pth')
  if not os.path.isfile(path):
    raise CheckpointError(f'No such file: {path!r} (expected a reference *_net_G.pth or '
                          '*_net_G_A.pth).')
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ConfigError('Converting PyTorch checkpoints needs PyTorch: pip install torch '
                      '(the CPU wheel is enough).') from e
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f'{path} is not a PyTorch checkpoint that torch.load can read '
                          f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}).'
                          ) from e
  if not isinstance(obj, Mapping) or not obj or not all(
      isinstance(k, str) and hasattr(v, 'shape') for k, v in obj.items()):
    raise CheckpointError(f'{path} holds a {type(obj).__name__}, not a state dict of tensors '
                          '(save one with torch.save(net.state_dict(), path)).')
  return dict(obj)

"""A folder of translations: PNGs per input and a static HTML gallery (``index.html``).

:class:`Writer` writes, per translated input ``<name>``:

* ``<name>.png`` - input | output(s) | target (if there is one), side by side;
* ``images/<name>_input.png``, ``images/<name>_output[_k].png`` (or, with named outputs,
  e.g. CycleGAN's, ``images/<name>_translation.png``, ``_reconstruction.png``),
  ``images/<name>_target.png``;

and at the end ``index.html``, a table name | input | output(s) | target with the settings
used. Image links are relative to the gallery's directory, so the folder can be moved or
served as it is. No JavaScript, no external resources.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re

import numpy as np

from p2p_jax import images


@dataclasses.dataclass(frozen=True)
class Row:
  """One translated input; paths relative to the gallery directory."""

  name: str
  input: str
  outputs: tuple[str, ...]
  target: str | None = None


_STYLE = """
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px; text-align: center; vertical-align: top; }
td.name { font-family: monospace; text-align: left; }
img { image-rendering: pixelated; max-width: 512px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dt { font-weight: bold; }
dd { margin: 0; font-family: monospace; }
"""


def _img(path: str, width: int | None) -> str:
  w = f' width="{int(width)}"' if width else ''
  src = html.escape(path.replace(os.sep, '/'), quote=True)
  return f'<a href="{src}"><img src="{src}"{w} loading="lazy" alt="{src}"></a>'


def render(rows: list[Row], *, title: str, settings: dict | None = None,
           display_width: int | None = None, output_names: tuple[str, ...] = ()) -> str:
  """The gallery page as a string. ``settings`` (e.g. checkpoint step, inference mode,
  seed) are listed above the table. ``display_width`` scales the images in the page.
  ``output_names`` head the output columns (default 'output' or 'output k')."""
  n_out = max((len(r.outputs) for r in rows), default=1)
  has_target = any(r.target for r in rows)
  out_heads = (list(output_names) if len(output_names) == n_out else
               ['output'] if n_out == 1 else [f'output {i + 1}' for i in range(n_out)])
  heads = ['name', 'input'] + out_heads + (['target'] if has_target else [])
  parts = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8">',
           f'<title>{html.escape(title)}</title>', f'<style>{_STYLE}</style>',
           '</head><body>', f'<h1>{html.escape(title)}</h1>']
  if settings:
    parts.append('<dl>')
    for k, v in settings.items():
      parts.append(f'<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>')
    parts.append('</dl>')
  parts.append('<table>')
  parts.append('<tr>' + ''.join(f'<th>{html.escape(h)}</th>' for h in heads) + '</tr>')
  for r in rows:
    cells = [f'<td class="name">{html.escape(r.name)}</td>',
             f'<td>{_img(r.input, display_width)}</td>']
    for i in range(n_out):
      cells.append(f'<td>{_img(r.outputs[i], display_width)}</td>' if i < len(r.outputs)
                   else '<td></td>')
    if has_target:
      cells.append(f'<td>{_img(r.target, display_width)}</td>' if r.target else '<td></td>')
    parts.append('<tr>' + ''.join(cells) + '</tr>')
  parts += ['</table>', f'<p>{len(rows)} image(s).</p>', '</body></html>', '']
  return '\n'.join(parts)


def write(directory: str, rows: list[Row], *, title: str, settings: dict | None = None,
          display_width: int | None = None, output_names: tuple[str, ...] = ()) -> str:
  """Writes ``directory/index.html``; returns its path."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, 'index.html')
  with open(path, 'w', encoding='utf-8') as f:
    f.write(render(rows, title=title, settings=settings, display_width=display_width,
                   output_names=output_names))
  return path


def safe_name(name: str) -> str:
  """A file-name-safe version of ``name`` (path separators become ``__``)."""
  name = re.sub(r'[^A-Za-z0-9._-]+', '_', name.replace('\\', '/').replace('/', '__'))
  return name.strip('._') or 'image'


class Writer:
  """Writes the PNGs of translated inputs into ``directory``, then its ``index.html``.

  Outputs are ``output`` (or ``output_k`` for ``num_samples`` > 1), or named by
  ``output_names`` (one name per output of each input, e.g. ('translation',
  'reconstruction'))."""

  def __init__(self, directory: str, num_samples: int = 1, output_names: tuple[str, ...] = ()):
    self.directory = directory
    self.num_samples = int(num_samples)
    self.output_names = tuple(output_names)
    self.rows: list[Row] = []
    self._used: set[str] = set()
    os.makedirs(os.path.join(directory, 'images'), exist_ok=True)

  def _unique(self, raw_name: str) -> str:
    name = safe_name(raw_name)
    base, n = name, 1
    while name in self._used:
      n += 1
      name = f'{base}_{n}'
    self._used.add(name)
    return name

  def _save(self, rel: str, image: np.ndarray) -> str:
    images.save_png(os.path.join(self.directory, rel), image)
    return rel

  def add(self, raw_name: str, x: np.ndarray, ys: list[np.ndarray],
          t: np.ndarray | None = None) -> None:
    """One input: uint8 input ``x``, outputs ``ys`` and target ``t`` (or None)."""
    name = self._unique(raw_name)
    rel_in = self._save(f'images/{name}_input.png', x)
    rel_outs = tuple(self._save(f'images/{name}_{self._output_suffix(k)}.png', y)
                     for k, y in enumerate(ys))
    rel_t = self._save(f'images/{name}_target.png', t) if t is not None else None
    self._save(f'{name}.png', images.row(x, *ys, *([t] if t is not None else [])))
    self.rows.append(Row(raw_name, rel_in, rel_outs, rel_t))

  def _output_suffix(self, k: int) -> str:
    if self.output_names:
      return self.output_names[k]
    return 'output' if self.num_samples == 1 else f'output_{k + 1}'

  def finish(self, *, title: str, settings: dict | None = None,
             display_width: int | None = None) -> str:
    """Writes ``index.html``; returns its path."""
    return write(self.directory, self.rows, title=title, settings=settings,
                 display_width=display_width, output_names=self.output_names)

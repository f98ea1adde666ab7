"""A static HTML gallery (``index.html``) of translations: name | input | output(s) | target.

Image links are relative to the gallery's directory, so the folder can be moved or served
as it is. No JavaScript, no external resources.
"""

from __future__ import annotations

import dataclasses
import html
import os


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
           display_width: int | None = None) -> str:
  """The gallery page as a string. ``settings`` (e.g. checkpoint step, inference mode,
  seed) are listed above the table. ``display_width`` scales the images in the page."""
  n_out = max((len(r.outputs) for r in rows), default=1)
  has_target = any(r.target for r in rows)
  out_heads = (['output'] if n_out == 1 else [f'output {i + 1}' for i in range(n_out)])
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
          display_width: int | None = None) -> str:
  """Writes ``directory/index.html``; returns its path."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, 'index.html')
  with open(path, 'w', encoding='utf-8') as f:
    f.write(render(rows, title=title, settings=settings, display_width=display_width))
  return path

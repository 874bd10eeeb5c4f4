"""Checkpoint files for ``from_torch``/``to_torch``: lazy sources, sliced reads, streamed writes."""

from jaxinit._src.core.mesh import context_mesh as context_mesh
from jaxinit._src.port.files.load import Loader as Loader
from jaxinit._src.port.files.load import opened as opened
from jaxinit._src.port.files.load import placement as placement
from jaxinit._src.port.files.load import reader as reader
from jaxinit._src.port.files.load import shapes as shapes
from jaxinit._src.port.files.save import Writer as Writer
from jaxinit._src.port.files.save import template as template
from jaxinit._src.port.files.sources import is_path as is_path

__all__ = [
    "Loader",
    "Writer",
    "context_mesh",
    "is_path",
    "opened",
    "placement",
    "reader",
    "shapes",
    "template",
]

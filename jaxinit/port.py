"""Porting between PyTorch and JAX: move weights both ways, and check a port starts like torch.

torch is imported only when needed (``pip install 'jaxinit[torch]'``).

>>> import jaxinit.port
>>> sorted(jaxinit.port.__all__)[:2]
['InitReport', 'LeafReport']
"""

from jaxinit._src.port.compare import compare_init as compare_init
from jaxinit._src.port.init_report import InitReport as InitReport
from jaxinit._src.port.init_report import LeafReport as LeafReport
from jaxinit._src.port.transfer import from_torch as from_torch
from jaxinit._src.port.transfer import to_torch as to_torch

__all__ = [
    "InitReport",
    "LeafReport",
    "compare_init",
    "from_torch",
    "to_torch",
]

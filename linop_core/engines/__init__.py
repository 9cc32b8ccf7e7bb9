"""Generation engines behind one interface (:class:`Engine`): MAT (our checkpoints or imported official ones)
and a classical biharmonic baseline that needs no weights; :func:`make_engine` builds either from an
:class:`EngineSpec`.

Modules: :mod:`.base` (the protocol and its shapes), :mod:`.device` (device / dtype choice, out-of-memory),
:mod:`.mat`, :mod:`.biharmonic`, :mod:`.factory`.
"""

from linop_core.engines.base import Engine, ProgressFn
from linop_core.engines.biharmonic import BiharmonicEngine
from linop_core.engines.device import pick_device
from linop_core.engines.factory import EngineKind, EngineSpec, default_checkpoint, make_engine
from linop_core.engines.mat import MatEngine

__all__ = [
    "BiharmonicEngine",
    "Engine",
    "EngineKind",
    "EngineSpec",
    "MatEngine",
    "ProgressFn",
    "default_checkpoint",
    "make_engine",
    "pick_device",
]

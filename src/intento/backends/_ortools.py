"""OR-Tools' ``cp_model``, imported without importing pandas until something uses it.

``ortools.sat.python.cp_model`` imports pandas at its top for its ``*_series`` helpers, which
intento never calls. pandas is most of that import: about 0.35 s of a 0.45 s import on the
project's machines, paid by every ``intento plan`` and every process that plans
(docs/benchmarks.md, "Start-up").

While ``cp_model`` is imported, ``sys.modules["pandas"]`` holds a stand-in module. At import
time ``cp_model`` only names ``pd.Index`` and ``pd.Series`` in type hints; the stand-in answers
those two, asked by ``cp_model``'s own code during its import, with placeholder classes (any
other code that reaches the stand-in in that moment, another thread's ``import pandas``, gets
the real pandas). The stand-in leaves ``sys.modules`` as soon as ``cp_model`` is imported, so
``import pandas`` anywhere else is unaffected; it stays ``cp_model``'s ``pd`` and, on the first
attribute asked of it afterwards, imports the real pandas and answers from it, so every pandas
helper of ``cp_model`` behaves exactly as before, only later.

If pandas was imported before, or ``cp_model`` asks for anything else at import time, the real
pandas is used: the worst case is the import time intento had before. ``INTENTO_EAGER_PANDAS=1``
turns the stand-in off.

Written by hand: importlib's ``LazyLoader`` loads a module on its first attribute access, and
``cp_model`` reads two attributes at import time, so it would not save anything.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

_HINT_ONLY = ("Index", "Series")
_CP_MODEL = "ortools.sat.python.cp_model"


class _PandasOnFirstUse(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("pandas", "pandas, imported on first use (intento.backends._ortools)")
        self._importing_cp_model = True

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if self.__dict__.get("_importing_cp_model") and name in _HINT_ONLY and sys._getframe(1).f_globals.get("__name__") == _CP_MODEL:
            return type(name, (), {"__module__": "pandas", "__doc__": "a type-hint placeholder"})
        real = sys.modules.get("pandas")
        if real is None or real is self:
            if real is self:
                del sys.modules["pandas"]
            real = importlib.import_module("pandas")
        value = getattr(real, name)
        if not self.__dict__.get("_importing_cp_model"):
            setattr(self, name, value)  # later reads skip __getattr__
        return value


def _import_cp_model():
    if _CP_MODEL in sys.modules or "pandas" in sys.modules or os.environ.get("INTENTO_EAGER_PANDAS", "") not in ("", "0"):
        from ortools.sat.python import cp_model

        return cp_model
    stand_in = _PandasOnFirstUse()
    sys.modules["pandas"] = stand_in
    try:
        from ortools.sat.python import cp_model
    finally:
        if sys.modules.get("pandas") is stand_in:
            del sys.modules["pandas"]
        stand_in._importing_cp_model = False
    return cp_model


cp_model = _import_cp_model()


class CpModel(cp_model.CpModel):
    """``cp_model.CpModel`` without the pre-PEP 8 aliases it gives each new model.

    ``cp_model.CpModel()`` walks its own attributes and binds a deprecated CamelCase alias of
    every ``add_*``, ``new_*`` and ``clear_*`` method to the new instance: about 0.4 ms a model,
    paid by every plan and by every counterfactual question, which compiles a model of its own
    (docs/benchmarks.md). intento calls only the PEP 8 names, so its models skip that step;
    everything else is cp_model's own."""

    def _add_pre_pep8_methods(self) -> None:
        pass

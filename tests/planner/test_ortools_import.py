"""`intento.backends._ortools`: cp_model imported without pandas, and cp_model's pandas helpers
still working, with the real pandas, once something uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, sys
report = {}
from intento.backends._ortools import cp_model
from intento.backends import cpsat  # the planner's own import of it
report["pandas_after_import"] = "pandas" in sys.modules
model = cp_model.CpModel()
x = model.new_int_var(0, 5, "x")
model.add(x >= 3)
model.minimize(x)
solver = cp_model.CpSolver()
report["plain"] = [solver.solve(model) == cp_model.OPTIMAL, solver.value(x)]
report["pandas_after_solve"] = "pandas" in sys.modules
if sys.argv[1] == "series":
    import pandas as pd
    report["real_pandas"] = pd.__name__ == "pandas" and hasattr(pd, "DataFrame") and sys.modules["pandas"] is pd
    index = pd.Index(["a", "b", "c"])
    xs = model.new_int_var_series(name="v", index=index, lower_bounds=0, upper_bounds=pd.Series([1, 2, 3], index=index))
    model.maximize(sum(xs))
    solver.solve(model)
    report["series"] = [type(xs).__name__, solver.values(xs).tolist()]
    report["same_class"] = cp_model.pd.Series is pd.Series
print(json.dumps(report))
"""


def run(mode: str, **env: str) -> dict:
    environment = dict(os.environ, **env)
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], env=environment, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_cp_model_is_imported_and_solves_without_pandas():
    report = run("plain")
    assert report == {"pandas_after_import": False, "plain": [True, 3], "pandas_after_solve": False}


def test_cp_models_pandas_helpers_use_the_real_pandas_on_first_use():
    report = run("series")
    assert report["pandas_after_import"] is False
    assert report["real_pandas"] is True
    assert report["series"] == ["Series", [1, 2, 3]]
    assert report["same_class"] is True


@pytest.mark.parametrize("mode", ["plain", "series"])
def test_intento_eager_pandas_imports_it_up_front(mode):
    report = run(mode, INTENTO_EAGER_PANDAS="1")
    assert report["pandas_after_import"] is True
    assert report["plain"] == [True, 3]
    if mode == "series":
        assert report["series"] == ["Series", [1, 2, 3]] and report["same_class"] is True


@pytest.mark.parametrize("value", ["0", ""])
def test_intento_eager_pandas_zero_or_empty_keeps_the_stand_in(value):
    assert run("plain", INTENTO_EAGER_PANDAS=value)["pandas_after_import"] is False

"""Every notebook in notebooks/ (jupytext percent-format .py) executes without error, in smoke size.

Each notebook is converted with jupytext and run cell by cell by nbclient in a fresh ipykernel,
with FRACPROP_SMOKE=1 (small sizes) and PYTHONPATH pointing at this checkout. A cell that raises
(an assertion of a notebook included) fails the test and shows that cell's traceback.
"""

import os
import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="notebook tests need jupytext")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbclient")
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel (the python3 kernel)")

import nbformat  # noqa: E402  (a dependency of jupytext and nbclient)
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (nbclient requires it)
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402
from traitlets import default  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
CELL_TIMEOUT_S = 300
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _ThisPythonKernel(AsyncKernelManager):
    """The native ``python3`` kernel of *this* interpreter, registered or not.

    With no kernel directories, jupyter_client takes the ``python3`` spec from ipykernel's
    package data, whose command is ``sys.executable -m ipykernel_launcher``. So the notebooks
    run in the interpreter that runs pytest, even on a machine where no kernel is registered
    or where a user-level ``python3`` spec points at another Python.
    """

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self):
        return KernelSpecManager(kernel_dirs=[])


def test_notebooks_are_found():
    assert NOTEBOOKS, "no notebooks/*.py found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    nb = jupytext.read(path)
    # A last cell reports which fracprop the kernel imported: it must be this checkout's.
    nb.cells.append(nbformat.v4.new_code_cell("import fracprop; print(fracprop.__file__)"))
    # The kernel inherits this environment.
    monkeypatch.setenv("FRACPROP_SMOKE", "1")
    monkeypatch.setenv("FRACPROP_NOTEBOOK_OUT", str(tmp_path / "figures"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    pythonpath = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), pythonpath])))
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        kernel_manager_class=_ThisPythonKernel,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
    )
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = ANSI.sub("", str(err))  # the failing cell and its traceback, without colours
    if error is not None:
        pytest.fail(f"{path.name}: a cell failed\n{error}", pytrace=False)
    imported = Path("".join(o.get("text", "") for o in nb.cells[-1].outputs).strip())
    assert imported.resolve().is_relative_to(ROOT / "fracprop"), imported

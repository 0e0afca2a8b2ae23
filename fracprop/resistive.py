r"""Resistive networks at steady state (issue 6; Lin, Desai, Barrows & Caravelli 2026).

DC operating points of resistor (and diode) networks at scale, differentiable by the implicit
function theorem; generalized equilibrium propagation (EP and coupled learning) and the
analytic gradient ``dJ/dg_e = −Δv_e Δλ_e``; learning problems and task builders.

```python
import fracprop.resistive as rn
task = rn.iris(seed=0)
problem, params = task.problem, task.params
x, y = task.train
grads = rn.Analytic()(problem, params, x, y)        # {"g": (E,)}, like params
```

See `fracprop._dc` (solver), `fracprop._dc_learning` (problem, estimators and the derivation
of their signs and factors) and `fracprop._dc_tasks` (builders).
"""

from ._dc import DCSolver as DCSolver
from ._dc import ResistiveError as ResistiveError
from ._dc import ResistiveNetwork as ResistiveNetwork
from ._dc import dc_solve as dc_solve
from ._dc import node_voltages as node_voltages
from ._dc_learning import EP as EP
from ._dc_learning import AbstractDCEstimator as AbstractDCEstimator
from ._dc_learning import Analytic as Analytic
from ._dc_learning import Autodiff as Autodiff
from ._dc_learning import CoupledLearning as CoupledLearning
from ._dc_learning import GeneralizedEP as GeneralizedEP
from ._dc_learning import ResistiveProblem as ResistiveProblem
from ._dc_tasks import Task as Task
from ._dc_tasks import allostery as allostery
from ._dc_tasks import diode_classifier as diode_classifier
from ._dc_tasks import iris as iris
from ._dc_tasks import layered_network as layered_network
from ._dc_tasks import linear_regression as linear_regression
from ._dc_tasks import random_edges as random_edges
from ._dc_tasks import random_network as random_network

r"""Resistive networks at steady state (Lin, Desai, Barrows & Caravelli 2026).

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

The modules: `network` (structure and parameters), `solver` (Newton, homotopy and the
implicit-function derivative), `learning` (problem, estimators and the derivation of their
signs and factors) and `tasks` (builders).
"""

from .learning import EP as EP
from .learning import AbstractDCEstimator as AbstractDCEstimator
from .learning import Analytic as Analytic
from .learning import Autodiff as Autodiff
from .learning import CoupledLearning as CoupledLearning
from .learning import GeneralizedEP as GeneralizedEP
from .learning import ResistiveProblem as ResistiveProblem
from .network import ResistiveError as ResistiveError
from .network import ResistiveNetwork as ResistiveNetwork
from .solver import DCSolver as DCSolver
from .solver import dc_solve as dc_solve
from .solver import node_voltages as node_voltages
from .tasks import Task as Task
from .tasks import allostery as allostery
from .tasks import diode_classifier as diode_classifier
from .tasks import iris as iris
from .tasks import layered_network as layered_network
from .tasks import linear_regression as linear_regression
from .tasks import random_edges as random_edges
from .tasks import random_network as random_network

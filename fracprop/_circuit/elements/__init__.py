"""Element groups by kind: static (resistors, diodes), multistep (capacitors, inductors),
fractional (memristors, CPEs) and sources. Each group is one batched `eqx.Module`."""

from .base import BRANCH_GROUPS as BRANCH_GROUPS
from .base import GMIN as GMIN
from .base import VT_27C as VT_27C
from .base import AbstractBranchGroup as AbstractBranchGroup
from .base import AbstractGroup as AbstractGroup
from .base import AbstractSourceGroup as AbstractSourceGroup
from .base import StepSetup as StepSetup
from .base import branch_group as branch_group
from .base import tree_dtype_cast as tree_dtype_cast
from .fractional import CPEs as CPEs
from .fractional import Memristors as Memristors
from .multistep import Capacitors as Capacitors
from .multistep import Inductors as Inductors
from .sources import ISources as ISources
from .sources import VSources as VSources
from .static import Diodes as Diodes
from .static import Resistors as Resistors

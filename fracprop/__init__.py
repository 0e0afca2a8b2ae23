"""fracprop: differentiable fractional-order circuits and local learning rules in JAX."""

from ._circuit import Circuit as Circuit
from ._circuit import CircuitBuilder as CircuitBuilder
from ._circuit import CircuitError as CircuitError
from ._elements import Capacitors as Capacitors
from ._elements import CPEs as CPEs
from ._elements import Diodes as Diodes
from ._elements import Inductors as Inductors
from ._elements import ISources as ISources
from ._elements import Memristors as Memristors
from ._elements import Resistors as Resistors
from ._elements import VSources as VSources
from ._history import AbstractHistory as AbstractHistory
from ._history import Exact as Exact
from ._kernels import GL as GL
from ._kernels import AbstractKernel as AbstractKernel
from ._laws import AbstractLaw as AbstractLaw
from ._laws import Cubic as Cubic
from ._laws import Custom as Custom
from ._laws import Linear as Linear
from ._laws import Sinh as Sinh
from ._laws import Tanh as Tanh
from ._progress import AbstractProgress as AbstractProgress
from ._progress import NoProgress as NoProgress
from ._progress import TextProgress as TextProgress
from ._simulate import RESULTS as RESULTS
from ._simulate import SimulationError as SimulationError
from ._simulate import Trajectory as Trajectory
from ._simulate import dc_operating_point as dc_operating_point
from ._simulate import simulate as simulate
from ._waveforms import DC as DC
from ._waveforms import PWL as PWL
from ._waveforms import AbstractWaveform as AbstractWaveform
from ._waveforms import Pulse as Pulse
from ._waveforms import Sampled as Sampled
from ._waveforms import Sin as Sin

try:
    from ._netlist import Netlist as Netlist
    from ._netlist import NetlistError as NetlistError
    from ._netlist import Tran as Tran
    from ._netlist import load_netlist as load_netlist
    from ._netlist import parse_netlist as parse_netlist
except ImportError:  # pragma: no cover - during development of the parser
    pass

__version__ = "0.1.0"

"""fracprop: differentiable fractional-order circuits and local learning rules in JAX."""

import importlib.metadata

from . import experiments as experiments
from . import resistive as resistive
from . import validation as validation
from ._circuit.builder import CircuitBuilder as CircuitBuilder
from ._circuit.circuit import Circuit as Circuit
from ._circuit.circuit import CircuitError as CircuitError
from ._circuit.elements import Capacitors as Capacitors
from ._circuit.elements import CPEs as CPEs
from ._circuit.elements import Diodes as Diodes
from ._circuit.elements import Inductors as Inductors
from ._circuit.elements import ISources as ISources
from ._circuit.elements import Memristors as Memristors
from ._circuit.elements import Resistors as Resistors
from ._circuit.elements import VSources as VSources
from ._circuit.integration import AbstractMultistep as AbstractMultistep
from ._circuit.integration import BackwardEuler as BackwardEuler
from ._circuit.integration import Gear2 as Gear2
from ._circuit.integration import Trapezoidal as Trapezoidal
from ._circuit.integration import resolve_method as resolve_method
from ._circuit.laws import AbstractLaw as AbstractLaw
from ._circuit.laws import Cubic as Cubic
from ._circuit.laws import Custom as Custom
from ._circuit.laws import Linear as Linear
from ._circuit.laws import Sinh as Sinh
from ._circuit.laws import Tanh as Tanh
from ._circuit.netlist import Netlist as Netlist
from ._circuit.netlist import NetlistError as NetlistError
from ._circuit.netlist import Tran as Tran
from ._circuit.netlist import load_netlist as load_netlist
from ._circuit.netlist import parse_netlist as parse_netlist
from ._circuit.waveforms import DC as DC
from ._circuit.waveforms import PWL as PWL
from ._circuit.waveforms import AbstractWaveform as AbstractWaveform
from ._circuit.waveforms import Pulse as Pulse
from ._circuit.waveforms import Sampled as Sampled
from ._circuit.waveforms import Sin as Sin
from ._fractional.fde import solve_linear_fde as solve_linear_fde
from ._fractional.history import AbstractHistory as AbstractHistory
from ._fractional.history import resolve_history as resolve_history
from ._fractional.history.blocked import HLS as HLS
from ._fractional.history.blocked import Dense as Dense
from ._fractional.history.exact import Exact as Exact
from ._fractional.history.soe import SOE as SOE
from ._fractional.kernels import FBDF2 as FBDF2
from ._fractional.kernels import GL as GL
from ._fractional.kernels import AbstractKernel as AbstractKernel
from ._fractional.starting import starting_weights as starting_weights
from ._learning.base import AbstractEstimator as AbstractEstimator
from ._learning.base import AbstractProblem as AbstractProblem
from ._learning.estimators import EP as EP
from ._learning.estimators import Autodiff as Autodiff
from ._learning.estimators import CoupledLearning as CoupledLearning
from ._learning.estimators import FiniteDifference as FiniteDifference
from ._learning.estimators import Replay as Replay
from ._learning.networks import BENCHMARK_NETWORK as BENCHMARK_NETWORK
from ._learning.networks import NetworkSpec as NetworkSpec
from ._learning.networks import benchmark_network as benchmark_network
from ._learning.networks import layered_network as layered_network
from ._learning.networks import multisine as multisine
from ._learning.networks import regime_problem as regime_problem
from ._learning.problem import LearningError as LearningError
from ._learning.problem import LearningProblem as LearningProblem
from ._learning.problem import fractional_integral as fractional_integral
from ._learning.sharding import batch_mesh as batch_mesh
from ._learning.sharding import replicate as replicate
from ._learning.sharding import shard_batch as shard_batch
from ._learning.sharding import sharded_estimate as sharded_estimate
from ._learning.sharding import sharded_simulate as sharded_simulate
from ._learning.sharding import sharded_step as sharded_step
from ._progress import AbstractProgress as AbstractProgress
from ._progress import NoProgress as NoProgress
from ._progress import TextProgress as TextProgress
from ._transient.dc import dc_operating_point as dc_operating_point
from ._transient.options import NewtonOptions as NewtonOptions
from ._transient.options import SaveAt as SaveAt
from ._transient.simulate import simulate as simulate
from ._transient.solution import RESULTS as RESULTS
from ._transient.solution import SimulationError as SimulationError
from ._transient.solution import Trajectory as Trajectory
from ._transient.stepper import AbstractAccumulator as AbstractAccumulator
from .experiments import Constraints as Constraints
from .experiments import EstimatorConfig as EstimatorConfig
from .experiments import OptimizerConfig as OptimizerConfig
from .experiments import TrainConfig as TrainConfig
from .experiments import TrainingDiverged as TrainingDiverged
from .experiments import TrainingError as TrainingError
from .experiments import TrainResult as TrainResult
from .experiments import load_train_config as load_train_config
from .experiments import train as train
from .experiments import train_config_from_dict as train_config_from_dict
from .experiments import train_summary_line as train_summary_line
from .experiments.config import ConfigError as ConfigError
from .experiments.config import TaskError as TaskError
from .experiments.tasks import TASKS as TASKS
from .experiments.tasks import AbstractTask as AbstractTask
from .experiments.tasks import TaskData as TaskData
from .experiments.tasks import register_task as register_task

# The version is declared once, in pyproject.toml.
try:
    __version__ = importlib.metadata.version("fracprop")
except importlib.metadata.PackageNotFoundError:  # a source checkout that is not installed
    __version__ = "0+unknown"

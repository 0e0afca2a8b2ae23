"""Experiments: configs, the estimator registry, tasks, training, checkpoints, plots and the
command line."""

from . import dc_tasks as dc_tasks  # registers the resistive tasks
from .config import ConfigError as ConfigError
from .config import TaskError as TaskError
from .config import TrainingDiverged as TrainingDiverged
from .config import TrainingError as TrainingError
from .tasks import TASKS as TASKS
from .tasks import AbstractTask as AbstractTask
from .tasks import TaskData as TaskData
from .tasks import register_task as register_task
from .train import TrainResult as TrainResult
from .train import train as train
from .train import train_summary_line as train_summary_line
from .train_config import Constraints as Constraints
from .train_config import EstimatorConfig as EstimatorConfig
from .train_config import OptimizerConfig as OptimizerConfig
from .train_config import TrainConfig as TrainConfig
from .train_config import load_train_config as load_train_config
from .train_config import train_config_from_dict as train_config_from_dict

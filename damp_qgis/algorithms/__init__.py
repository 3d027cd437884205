"""The DAMP Processing algorithms, one module each; ALGORITHMS is what the provider registers."""
from .evaluate import EvaluateAlgorithm
from .finetune import FinetuneAlgorithm
from .prompt import PromptAlgorithm
from .restore import RestoreAlgorithm
from .restore_folder import RestoreFolderAlgorithm
from .routing import RoutingAlgorithm
from .simulate import SimulateAlgorithm
from .upscale import UpscaleAlgorithm

ALGORITHMS = (RestoreAlgorithm, RestoreFolderAlgorithm, UpscaleAlgorithm, PromptAlgorithm, RoutingAlgorithm,
              EvaluateAlgorithm, SimulateAlgorithm, FinetuneAlgorithm)

"""Layer 3, the training methods: a typed class each (``base``) and one runner each (``runners``).

- ``base``      ``ZeroShot | ICL(k) | Probe(n, ProbeConfig) | QLoRA(n, QLoRAConfig) | CoT(inner, ...)``,
                ``Recipe`` / ``register`` / ``kinds`` / ``build`` (a YAML's method name and options -> a
                typed method), ``SeedJob``
- ``icl``       in-context examples: one draw per seed, the shared prefix, dropped examples
- ``features``  hidden states for probes, extracted once per model, dataset and prompt, cached
- ``probe``     the authors' linear probe (``ProbeConfig``)
- ``qlora``     LoRA on a quantized base, the authors' schedule (``QLoRAConfig``)
- ``noise``     label noise for training examples
- ``runners``   ``RUNNERS``: method type -> the function that runs one seed of it
"""

from e2h_utils.methods.base import (  # noqa: F401
    ICL,
    CoT,
    Method,
    MethodError,
    Probe,
    QLoRA,
    Recipe,
    SeedJob,
    ZeroShot,
    build,
    kinds,
    register,
)
from e2h_utils.methods.probe import ProbeConfig  # noqa: F401
from e2h_utils.methods.qlora import QLoRAConfig  # noqa: F401
from e2h_utils.methods.runners import RUNNERS, runner_for  # noqa: F401

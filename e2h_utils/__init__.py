"""e2h_utils: the helper package behind the e2h notebooks.

Six layers, read top-down; a module imports only its own layer and the layers before it
(``tests/test_layers.py``):

- core           ``paths`` (every folder), ``atomic`` (atomic files), ``keys`` (keys of stored things)
- ``data``        upstream sources, the four datasets, hardness measures, prompts, answer reading
- ``engine``      how a profile runs, model loading, the inference engine (batching, scoring, generation)
- ``methods``     the training methods as types (``ZeroShot | ICL | Probe | QLoRA | CoT``) and one runner each
- ``experiments`` what a run is (``ExperimentSpec``), the paired split, the result store, the ``Runner``,
                  pure plan builders, MDL, a notebook's typed settings
- ``analysis``    the result table (point, lo, hi), SGR and the bootstrap, tables, figures, takeaways
- ``pipeline``    checking a profile, the preflight plan, Slurm jobs, the dry run, ``make reproduce``

Each layer's ``__init__`` lists its modules. A notebook plans (``experiments.plans`` through
``experiments.settings``), runs (``experiments.runner.Runner``) and analyses
(``analysis.estimates.table``).
"""

__version__ = "0.2.0"

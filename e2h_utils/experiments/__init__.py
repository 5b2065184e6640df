"""Layer 4, experiments: what to run (specs, plans, settings), running it, and the store.

- ``spec``      ``ExperimentSpec``, ``Training``, ``TrainSource``, ``TestSelection``: what a run is; its canonical form
- ``split``     the project's paired split of each hardness level into a training pool and test items
- ``store``     item-level results on disk, keyed by the canonical spec (``get_or_compute``)
- ``runner``    ``Runner``: runs any list of specs on one model and returns item-level results
- ``plans``     pure plan builders: comparisons (SGR), learning curves, noise, level grids, prompt sources
- ``mdl``       model-based hardness (MDL) as the authors compute it
- ``schema``    what a parameter may be: each settings field's check and what it counts (``param``)
- ``settings``  a notebook's parameters as typed settings (each field declared with its check), and its plan
"""

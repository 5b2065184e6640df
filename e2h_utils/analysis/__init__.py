"""Layer 5, analysis: from item-level results to the one result table, tables and figures.

- ``metrics``         SGR and the paired bootstrap
- ``estimates``       a plan and its results -> the result table (``point``, ``lo``, ``hi`` per quantity)
- ``power``           how wide those CIs will be for n items and S seeds; the items a target width needs
- ``hardness_stats``  correlations between hardness measures, accuracy by hardness level
- ``tables``          formatted tables from the result table
- ``plots``           the figure style and savers, the main figures
- ``rq_plots``        figures of the RQ1 / RQ3 / RQ4 notebooks
- ``takeaways``       the sentences each notebook ends with, computed from the result table
- ``outputs``         a notebook's output folder: tables and figures written and recorded
- ``per_model``       one plan per model, run and tabled one model in memory at a time
- ``provenance``      where a notebook's numbers came from (``provenance.json``)
"""

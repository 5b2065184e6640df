"""Layer 6, running profiles: checking parameters, planning, running notebooks.

- ``validate``   every value of a profile's YAML files checked before any notebook starts
- ``plan``       the preflight plan: every run of a profile, what is stored, memory and hours (``make plan``)
- ``cluster``    the plan's runs as submitit jobs on Slurm or local processes
- ``dry_run``    a profile's notebooks on a tiny random stand-in model with capped sizes (``make dry-run``)
- ``reproduce``  ``make reproduce``: papermill over every notebook of a profile
- ``report``     ``make report``: a profile's executed notebooks as a static site
- ``gpu_check``  ``make gpu-check``: the embedded model on a GPU at every precision against CPU float32
"""

"""Layer 1, data and hardness (no model anywhere here).

- ``sources``   upstream files: the Hugging Face Hub / GitHub at pinned revisions, or the offline mirror
- ``datasets``  the four datasets as tidy DataFrames with their hardness columns (``load_dataset``)
- ``hardness``  the registry of hardness measures and their easy / medium / hard cut-offs
- ``prompts``   the prompt formats (the authors' prompts; chain-of-thought formats)
- ``answers``   reading a chain-of-thought answer (the authors' strict rule, a lenient one)
"""

"""``vlm-bench``: load generation against the served paths, in-process baselines, reports and plots."""

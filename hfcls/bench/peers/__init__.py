"""The tools users pick instead of hfcls, run on the same work for hfcls-bench --peers."""

"""Command-line tools around training runs: plot, flops, browse, verify."""

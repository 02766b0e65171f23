"""htcgrid's benchmarks: what a task costs in AWS requests and dollars, and how fast the grid
runs (``python -m htcgrid_bench``, ``make bench``; results in docs/performance.md)."""
